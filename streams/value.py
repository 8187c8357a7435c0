"""Benefit-cost ratio, net value and customer lifetime value.

Benefit-cost ratio = (revenue - service cost) / max(service cost, cost_floor), over the
window or the lifetime (CONTRACT.md section 1).

CLV, from a customer's window as of the day being closed:

    observed_days  = max(min(window_days, days since first seen), min_observed_days)
    per_year       = 365 / observed_days                       (annualisation)
    frequency      = purchases x per_year                      (orders a year)
    order_value    = purchase amount / purchases               (average order value)
    gross_profit   = revenue x per_year x gross_margin         (= frequency x order_value
                     x gross_margin, plus fees and subscriptions, less refunds)
    service_cost   = window service cost x per_year
    annuity        = L                  if discount_rate = 0
                   = (1 - (1 + d)^-L) / d   otherwise           (L: expected lifetime, years)
    CLV            = (gross_profit - service_cost) x annuity - acquisition_cost

The expected lifetime L is configured (`expected_lifetime_years`), or derived from the
churn observed in the population: if a share s of the customers who bought in the
window has bought nothing for `churn_days`, the yearly churn rate is
r = 1 - (1 - s)^(365 / churn_days) and L = 1 / r, capped at `max_lifetime_years`.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.value_config import ClvSettings
from streams.units import MONEY_SCALE
from streams.window import WindowTotals


def benefit_cost_ratio(revenue: int, service_cost: int, cost_floor: float) -> float:
    """(revenue - cost) / max(cost, cost_floor), from micro-unit sums."""
    denominator = max(service_cost / MONEY_SCALE, cost_floor)
    return (revenue - service_cost) / MONEY_SCALE / denominator


def net_value(revenue: int, service_cost: int) -> float:
    return (revenue - service_cost) / MONEY_SCALE


def expected_lifetime_years(settings: ClvSettings, churned_share: float | None) -> float:
    """L: configured, or 1 / (observed yearly churn rate), capped at max_lifetime_years."""
    if settings.lifetime_source == "config" or churned_share is None:
        return min(settings.expected_lifetime_years, settings.max_lifetime_years)
    share = min(max(churned_share, 0.0), 1.0)
    rate = 1.0 - float((1.0 - share) ** (365.0 / settings.churn_days))
    if rate <= 1.0 / settings.max_lifetime_years:
        return settings.max_lifetime_years
    return 1.0 / rate


def annuity(years: float, discount_rate: float) -> float:
    """Present value of 1 a year for `years` years at `discount_rate`."""
    if discount_rate == 0:
        return years
    return (1.0 - float((1.0 + discount_rate) ** -years)) / discount_rate


@dataclass(frozen=True, slots=True)
class Clv:
    """A CLV and the figures behind it (money in the currency unit, rates per year)."""

    value: float
    purchase_frequency_per_year: float
    average_order_value: float
    annual_gross_profit: float
    annual_service_cost: float
    lifetime_years: float
    annuity_factor: float


def customer_lifetime_value(
    totals: WindowTotals,
    *,
    days_known: int,
    window_days: int,
    lifetime_years: float,
    settings: ClvSettings,
) -> Clv:
    observed = max(min(window_days, days_known), settings.min_observed_days)
    per_year = 365.0 / observed
    frequency = totals.purchases * per_year
    order_value = (
        totals.purchase_amount / MONEY_SCALE / totals.purchases if totals.purchases else 0.0
    )
    gross_profit = totals.revenue / MONEY_SCALE * per_year * settings.gross_margin
    service_cost = totals.service_cost / MONEY_SCALE * per_year
    factor = annuity(lifetime_years, settings.discount_rate)
    value = (gross_profit - service_cost) * factor - settings.acquisition_cost
    return Clv(value, frequency, order_value, gross_profit, service_cost, lifetime_years, factor)
