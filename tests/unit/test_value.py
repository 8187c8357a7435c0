"""Benefit-cost ratio, net value and CLV against hand-computed cases."""

from __future__ import annotations

import pytest

from schemas.value_config import ClvSettings
from streams.units import MONEY_SCALE
from streams.value import (
    annuity,
    benefit_cost_ratio,
    customer_lifetime_value,
    expected_lifetime_years,
    net_value,
)
from streams.window import WindowTotals


def m(value: float) -> int:
    return round(value * MONEY_SCALE)


def test_the_contract_example_b_ranks_above_a() -> None:
    """A: revenue 2,000,000, cost 1,000,000 -> 1.0; B: 1,000,000 and 200,000 -> 4.0.
    B is worth more per unit of service although its net value is lower."""
    a = benefit_cost_ratio(m(2_000_000), m(1_000_000), 1.0)
    b = benefit_cost_ratio(m(1_000_000), m(200_000), 1.0)
    assert a == 1.0
    assert b == 4.0
    assert b > a
    assert net_value(m(1_000_000), m(200_000)) < net_value(m(2_000_000), m(1_000_000))


RATIOS: list[tuple[str, float, float, float, float]] = [
    # (why, revenue, cost, cost_floor, ratio)
    ("no cost: the floor is the denominator", 50.0, 0.0, 1.0, 50.0),
    ("cost below the floor: the floor", 50.0, 0.5, 1.0, 49.5),
    ("cost above the floor: the cost", 300.0, 100.0, 1.0, 2.0),
    ("break-even", 100.0, 100.0, 1.0, 0.0),
    ("revenue below cost", 50.0, 100.0, 1.0, -0.5),
    ("negative revenue (refunds)", -50.0, 100.0, 1.0, -1.5),
    ("nothing at all", 0.0, 0.0, 1.0, 0.0),
    ("a larger floor", 10.0, 0.0, 10.0, 1.0),
]


@pytest.mark.parametrize(
    ("why", "revenue", "cost", "floor", "ratio"), RATIOS, ids=[c[0] for c in RATIOS]
)
def test_ratio(why: str, revenue: float, cost: float, floor: float, ratio: float) -> None:
    assert benefit_cost_ratio(m(revenue), m(cost), floor) == pytest.approx(ratio)


def totals(*, revenue: float, cost: float, purchases: int, amount: float) -> WindowTotals:
    return WindowTotals(
        revenue=m(revenue), service_cost=m(cost), purchases=purchases, purchase_amount=m(amount)
    )


CLV_CASES: list[tuple[str, WindowTotals, int, float, dict[str, float], float]] = [
    # (why, window totals, days known, lifetime years, settings, expected CLV)
    # a full year: 12 orders of 100; margin 30 % -> 360/y; cost 60/y -> 300/y; 3 y, no discount
    (
        "a year of history, no discount",
        totals(revenue=1200, cost=60, purchases=12, amount=1200),
        400,
        3.0,
        {"gross_margin": 0.3, "discount_rate": 0.0},
        900.0,
    ),
    # 183 days seen: (600 x 0.3 - 30) = 150 in 183 days, annualised x 365/183
    (
        "half a year seen is annualised",
        totals(revenue=600, cost=30, purchases=6, amount=600),
        183,
        3.0,
        {"gross_margin": 0.3, "discount_rate": 0.0},
        150.0 * 365 / 183 * 3,
    ),
    # discounting 10 %, 2 years: annuity (1 - 1.1^-2)/0.1 = 1.7355371900826446
    (
        "discounted over two years",
        totals(revenue=1000, cost=0, purchases=10, amount=1000),
        365,
        2.0,
        {"gross_margin": 0.5, "discount_rate": 0.1},
        500 * 1.7355371900826446,
    ),
    (
        "the acquisition cost is subtracted once",
        totals(revenue=1000, cost=0, purchases=10, amount=1000),
        365,
        1.0,
        {"gross_margin": 0.5, "discount_rate": 0.0, "acquisition_cost": 120},
        380.0,
    ),
    # two days seen: extrapolated from min_observed_days (30), not from 2
    (
        "a brand-new customer is not annualised x 180",
        totals(revenue=100, cost=10, purchases=1, amount=100),
        2,
        1.0,
        {"gross_margin": 0.3, "discount_rate": 0.0},
        (30 - 10) * 365 / 30,
    ),
    (
        "costs above margin give a negative CLV",
        totals(revenue=100, cost=200, purchases=1, amount=100),
        365,
        2.0,
        {"gross_margin": 0.3, "discount_rate": 0.0},
        (30 - 200) * 2,
    ),
]


@pytest.mark.parametrize(
    ("why", "window", "known", "years", "overrides", "expected"),
    CLV_CASES,
    ids=[c[0] for c in CLV_CASES],
)
def test_clv(
    why: str,
    window: WindowTotals,
    known: int,
    years: float,
    overrides: dict[str, float],
    expected: float,
) -> None:
    settings = ClvSettings(**overrides)  # type: ignore[arg-type]
    clv = customer_lifetime_value(
        window, days_known=known, window_days=365, lifetime_years=years, settings=settings
    )
    assert clv.value == pytest.approx(expected)


def test_clv_inputs_are_reported() -> None:
    clv = customer_lifetime_value(
        totals(revenue=1200, cost=60, purchases=12, amount=1200),
        days_known=365,
        window_days=365,
        lifetime_years=3.0,
        settings=ClvSettings(discount_rate=0.0),
    )
    assert clv.purchase_frequency_per_year == 12
    assert clv.average_order_value == 100
    assert clv.annual_gross_profit == pytest.approx(360)
    assert clv.annual_service_cost == 60
    assert clv.annuity_factor == 3.0


LIFETIMES: list[tuple[str, dict[str, object], float | None, float]] = [
    ("configured", {"expected_lifetime_years": 4.0}, 0.5, 4.0),
    ("configured, capped", {"expected_lifetime_years": 20.0, "max_lifetime_years": 8.0}, None, 8.0),
    ("observed: no churn gives the cap", {"lifetime_source": "observed_churn"}, 0.0, 10.0),
    # half of the buyers silent for 365 days: yearly churn 0.5 -> 2 years
    (
        "observed: half churn a year",
        {"lifetime_source": "observed_churn", "churn_days": 365},
        0.5,
        2.0,
    ),
    # 10 % silent over 180 days: r = 1 - 0.9^(365/180)
    (
        "observed: 10 % over 180 days",
        {"lifetime_source": "observed_churn"},
        0.1,
        1 / (1 - 0.9 ** (365 / 180)),
    ),
    (
        "observed, but no population yet: the configured value",
        {"lifetime_source": "observed_churn"},
        None,
        3.0,
    ),
]


@pytest.mark.parametrize(
    ("why", "overrides", "share", "years"), LIFETIMES, ids=[c[0] for c in LIFETIMES]
)
def test_expected_lifetime(
    why: str, overrides: dict[str, object], share: float | None, years: float
) -> None:
    settings = ClvSettings(**overrides)  # type: ignore[arg-type]
    assert expected_lifetime_years(settings, share) == pytest.approx(years)


def test_annuity() -> None:
    assert annuity(5.0, 0.0) == 5.0
    assert annuity(1.0, 0.1) == pytest.approx(1 / 1.1)
    assert annuity(0.5, 0.1) == pytest.approx((1 - 1.1**-0.5) / 0.1)
