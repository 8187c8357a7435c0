"""Configuration of the value engine: windows, score, CLV and tiering (TOML sections
[value], [clv] and [tiering])."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from schemas.config import Section

Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Percent = Annotated[float, Field(gt=0, lt=100, allow_inf_nan=False)]


class ValueSettings(Section):
    """Rolling figures and the score customers are ranked by."""

    #: The rolling window, in days, of revenue, cost, ratio and CLV inputs.
    window_days: Annotated[int, Field(ge=7, le=3650)] = 365
    #: Denominator of the benefit-cost ratio for customers with (almost) no service cost.
    cost_floor: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    #: What ranks customers: the windowed benefit-cost ratio, the windowed net value
    #: (revenue - cost) or the customer lifetime value.
    score: Literal["ratio", "net_value", "clv"] = "ratio"


class ClvSettings(Section):
    """Customer lifetime value (see streams/value.py for the formula)."""

    #: Share of revenue that is gross profit.
    gross_margin: Fraction = 0.3
    #: Expected remaining lifetime: from `expected_lifetime_years`, or from the churn
    #: observed in the population (share of buyers silent for `churn_days`).
    lifetime_source: Literal["config", "observed_churn"] = "config"
    expected_lifetime_years: Annotated[float, Field(gt=0, le=50)] = 3.0
    max_lifetime_years: Annotated[float, Field(gt=0, le=50)] = 10.0
    churn_days: Annotated[int, Field(ge=30, le=3650)] = 180
    #: Yearly discount rate of future value.
    discount_rate: Annotated[float, Field(ge=0, le=1)] = 0.08
    #: Subtracted once from every customer's CLV.
    acquisition_cost: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    #: Rates (orders per year, cost per year) are extrapolated from at least this many
    #: days, so a customer seen for two days is not annualised x 180.
    min_observed_days: Annotated[int, Field(ge=1, le=365)] = 30


class TieringSettings(Section):
    """How customers are placed in the value pyramid, relative to the population."""

    mode: Literal["percentile", "zscore", "absolute"] = "percentile"
    #: percentile mode: vip = the top `vip_top_percent` %, gold the next ..., bronze the rest.
    vip_top_percent: Percent = 5.0
    gold_next_percent: Percent = 15.0
    silver_next_percent: Percent = 30.0
    #: zscore mode: cut points on the z-score of the (optionally log-transformed) score.
    #: The defaults are the normal approximation of the percentile defaults.
    zscore_log_transform: bool = True
    zscore_vip: float = 1.645
    zscore_gold: float = 0.842
    zscore_silver: float = 0.0
    #: absolute mode: fixed score thresholds.
    absolute_vip: float = 5.0
    absolute_gold: float = 2.0
    absolute_silver: float = 0.5
    #: Hysteresis: a customer enters a tier at its cut and leaves it only below the cut
    #: less this margin (in the mode's unit), and not before `min_dwell_days` in the tier.
    percentile_margin_points: Annotated[float, Field(ge=0, le=20)] = 2.0
    zscore_margin: Annotated[float, Field(ge=0, le=2)] = 0.1
    absolute_margin_relative: Annotated[float, Field(ge=0, le=0.5)] = 0.05
    min_dwell_days: Annotated[int, Field(ge=0, le=365)] = 7
    #: A customer is `new` until first seen this many days before the day being closed
    #: and with at least this many purchase or subscription orders.
    new_min_days: Annotated[int, Field(ge=0, le=3650)] = 30
    new_min_orders: Annotated[int, Field(ge=0, le=1000)] = 0
    #: Relative accuracy of the population summary (a log-bucket sketch).
    sketch_relative_accuracy: Annotated[float, Field(ge=0.001, le=0.1)] = 0.01
    #: How often each worker checks whether a day can be closed or re-tiered (seconds).
    check_interval_seconds: Annotated[float, Field(ge=0.05, le=10)] = 1.0

    @model_validator(mode="after")
    def _ordered_cuts(self) -> TieringSettings:
        total = self.vip_top_percent + self.gold_next_percent + self.silver_next_percent
        if total >= 100:
            raise ValueError(
                "vip_top_percent + gold_next_percent + silver_next_percent "
                "must leave room for bronze (< 100)"
            )
        if not self.zscore_vip > self.zscore_gold > self.zscore_silver:
            raise ValueError("zscore cut points must decrease: vip > gold > silver")
        if not self.absolute_vip > self.absolute_gold > self.absolute_silver:
            raise ValueError("absolute thresholds must decrease: vip > gold > silver")
        return self

    def percentile_cuts(self) -> tuple[float, float, float]:
        """(vip, gold, silver) entry percentiles: 95, 80, 50 by default."""
        vip = 100.0 - self.vip_top_percent
        gold = vip - self.gold_next_percent
        return vip, gold, gold - self.silver_next_percent


class PredictionSettings(Section):
    """Predictive value: the purchase (MBG/NBD) and spend (Gamma-Gamma) models, fitted
    from the stream at the daily close (streams/predictive.py, agents/engine/population.py)."""

    enabled: bool = True
    #: mbgnbd: a one-time buyer can be gone (the default, see the README); bgnbd: the
    #: 2005 model, which holds every one-time buyer alive.
    variant: Literal["mbgnbd", "bgnbd"] = "mbgnbd"
    #: Fit on the closed days that are a multiple of this many days since 1970-01-01.
    refit_days: Annotated[int, Field(ge=1, le=365)] = 7
    #: Buyers in the fit: each partition offers its buyers with the smallest customer-id
    #: hashes, the merge keeps the smallest overall (a uniform, deterministic sample).
    sample_customers: Annotated[int, Field(ge=100, le=20_000)] = 4000
    #: Fit only with at least this many buyers in the sample, and as many repeat buyers
    #: for the spend model; before that, the historic CLV only.
    min_customers: Annotated[int, Field(ge=20, le=20_000)] = 300
    min_repeat_buyers: Annotated[int, Field(ge=10, le=20_000)] = 50
    #: Predicted CLV: expected margin over this many days, discounted at
    #: clv.discount_rate, less the customer's own service cost per day while alive.
    horizon_days: Annotated[int, Field(ge=30, le=3650)] = 365

    @model_validator(mode="after")
    def _sample_holds_the_minimum(self) -> PredictionSettings:
        if self.min_customers > self.sample_customers:
            raise ValueError("min_customers must be at most sample_customers")
        if self.min_repeat_buyers > self.min_customers:
            raise ValueError("min_repeat_buyers must be at most min_customers")
        return self
