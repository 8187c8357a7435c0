"""The purchase (BG/NBD, MBG/NBD) and spend (Gamma-Gamma) models: published fits
reproduced on the CDNOW sample, closed forms against hand computation and simulation,
and the properties every prediction must have."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import hyp2f1

from bench.predictive import calibration, cdnow_spend
from streams.predictive import (
    PurchaseModel,
    SpendModel,
    age_alive_below,
    expected_purchases,
    expected_purchases_within,
    expected_spend,
    fit_purchases,
    fit_spend,
    p_alive,
    predict,
)


def cdnow_histories(unit_days: float) -> tuple[list[float], ...]:
    """(x, t_x, T, mean repeat spend) of CDNOW's 2,357 customers at the end of the
    39-week calibration (bench/predictive.py reads the sample)."""
    histories = calibration(cdnow_spend(), unit_days)
    return tuple(list(column) for column in zip(*histories.values(), strict=True))


def three_digits(value: float) -> str:
    return f"{value:.3g}"


def test_bg_nbd_reproduces_fader_hardie_lee_2005_on_cdnow() -> None:
    """r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9,582.4 (weeks)."""
    x, t_x, age, _ = cdnow_histories(7.0)
    assert len(x) == 2357
    assert sum(x) == 2457  # repeat purchases in calibration, as in the paper
    model = fit_purchases(x, t_x, age, variant="bgnbd")
    assert [three_digits(v) for v in (model.r, model.alpha, model.a, model.b)] == [
        "0.243",
        "4.41",
        "0.793",
        "2.43",
    ]
    assert round(model.log_likelihood, 1) == -9582.4


def test_gamma_gamma_reproduces_the_published_spend_fit_on_cdnow() -> None:
    """p = 6.25, q = 3.74, gamma = 15.44 on the 946 repeat buyers."""
    x, _, _, m = cdnow_histories(7.0)
    model = fit_spend(x, m)
    assert model.customers == 946
    assert [three_digits(v) for v in (model.p, model.q, model.gamma)] == ["6.25", "3.74", "15.4"]


def test_the_shipped_mbg_nbd_fits_cdnow_in_days_and_weeks_alike() -> None:
    """MBG/NBD, the variant vipstream runs: r, a, b do not depend on the time unit and
    alpha scales with it (days here, weeks in the paper)."""
    weeks = fit_purchases(*cdnow_histories(7.0)[:3], variant="mbgnbd")
    days = fit_purchases(*cdnow_histories(1.0)[:3], variant="mbgnbd")
    assert [three_digits(v) for v in (weeks.r, weeks.alpha, weeks.a, weeks.b)] == [
        "0.525",
        "6.18",
        "0.891",
        "1.61",
    ]
    assert math.isclose(days.alpha / 7, weeks.alpha, rel_tol=1e-4)
    for name in ("r", "a", "b"):
        assert math.isclose(getattr(days, name), getattr(weeks, name), rel_tol=1e-4)


MBG = PurchaseModel("mbgnbd", r=1.0, alpha=1.0, a=1.0, b=1.0, log_likelihood=0.0, customers=1)
BG = PurchaseModel("bgnbd", r=1.0, alpha=1.0, a=1.0, b=1.0, log_likelihood=0.0, customers=1)


@pytest.mark.parametrize(
    ("model", "x", "t_x", "age", "expected"),
    [
        # 1 / (1 + a/(b+x) * ((alpha+T)/(alpha+t_x))^(r+x)) = 1 / (1 + 1/2 * (3/2)^2)
        (MBG, 1, 1, 2, 1 / (1 + 0.5 * 2.25)),
        # BG/NBD: a/(b+x-1) = 1
        (BG, 1, 1, 2, 1 / (1 + 2.25)),
        # BG/NBD: a one-time buyer is alive for ever; MBG/NBD: 1 / (1 + 1 * 3^1)
        (BG, 0, 0, 2, 1.0),
        (MBG, 0, 0, 2, 1 / (1 + 3.0)),
        # bought at T: only the drop-out right after the last purchase counts
        (MBG, 2, 5, 5, 1 / (1 + 1 / 3)),
    ],
    ids=["mbg repeat", "bg repeat", "bg one-time", "mbg one-time", "bought today"],
)
def test_p_alive_by_hand(
    model: PurchaseModel, x: float, t_x: float, age: float, expected: float
) -> None:
    assert math.isclose(p_alive(model, x, t_x, age), expected, rel_tol=1e-12)


@pytest.mark.parametrize("variant", ["bgnbd", "mbgnbd"])
def test_expected_purchases_of_a_new_customer_match_a_simulation(variant: str) -> None:
    """A customer who just made a first purchase (x = t_x = T = 0): simulate the model's
    story (rate ~ Gamma(r, alpha), drop-out probability ~ Beta(a, b); MBG/NBD may drop
    out at the first purchase, BG/NBD only at repeat ones) and compare the mean count of
    purchases in the next t with the closed form."""
    model = PurchaseModel(variant, r=2.0, alpha=10.0, a=2.0, b=3.0, log_likelihood=0, customers=1)  # type: ignore[arg-type]
    rng = np.random.default_rng(7)
    n, t = 400_000, 20.0
    rate = rng.gamma(model.r, 1 / model.alpha, n)
    drop = rng.beta(model.a, model.b, n)
    poisson = rng.poisson(rate * t)
    last = rng.geometric(drop)  # the purchase after which the customer drops out
    bought = np.minimum(poisson, last)
    if variant == "mbgnbd":
        bought = np.where(rng.random(n) < drop, 0, bought)
    simulated = float(bought.mean())
    closed = expected_purchases(model, t, 0, 0, 0)
    assert abs(closed - simulated) < 4 * float(bought.std()) / math.sqrt(n)


def test_expected_spend_moves_from_the_population_mean_to_the_customers_own() -> None:
    model = SpendModel(p=6.0, q=4.0, gamma=15.0, log_likelihood=0.0, customers=1)
    population = 6.0 * 15.0 / 3.0
    assert expected_spend(model, 0, 0) == population
    # p (gamma + x m) / (p x + q - 1) = 6 (15 + 2*50) / (12 + 3)
    assert math.isclose(expected_spend(model, 2, 50.0), 6 * 115 / 15)
    assert abs(expected_spend(model, 1000, 50.0) - 50.0) < 0.1


FITTED = PurchaseModel("mbgnbd", 0.525, 43.28, 0.891, 1.614, 0.0, 1)
SPEND = SpendModel(6.25, 3.74, 15.44, 0.0, 1)

histories = st.tuples(st.integers(0, 60), st.floats(0, 900), st.floats(0, 900)).map(
    lambda h: (h[0], min(h[1], h[2]) if h[0] else 0.0, max(h[1], h[2]))
)


@settings(max_examples=300, deadline=None)
@given(histories, st.floats(1, 400))
def test_p_alive_is_a_probability_that_silence_lowers(
    history: tuple[int, float, float], later: float
) -> None:
    x, t_x, age = history
    now = p_alive(FITTED, x, t_x, age)
    assert 0.0 <= now <= 1.0
    assert p_alive(FITTED, x, t_x, age + later) <= now


@settings(max_examples=300, deadline=None)
@given(histories, st.floats(0.5, 400), st.floats(0.5, 400))
def test_expected_purchases_are_non_negative_and_grow_with_the_horizon(
    history: tuple[int, float, float], t: float, more: float
) -> None:
    x, t_x, age = history
    near = expected_purchases(FITTED, t, x, t_x, age)
    assert near >= 0.0
    assert expected_purchases(FITTED, t + more, x, t_x, age) >= near - 1e-9


def one_horizon(model: PurchaseModel, t: float, x: float, t_x: float, T: float) -> float:
    """Eq. 10 for one horizon with scalar 2F1 (the reference the vectorised form keeps)."""
    if t <= 0:
        return 0.0
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    z = t / (alpha + T + t)
    shrink = ((alpha + T) / (alpha + T + t)) ** (r + x)
    if model.variant == "bgnbd":
        lead = (a + b + x - 1) / (a - 1)
        hyper = float(hyp2f1(r + x, b + x, a + b + x - 1, z))
    else:
        lead = (a + b + x) / (a - 1)
        hyper = float(hyp2f1(r + x, b + x + 1, a + b + x, z))
    alive = p_alive(model, x, t_x, T)
    value = lead * (1.0 - shrink * hyper) * alive
    bound = (r + x) / (alpha + T) * t * alive
    return min(max(value, 0.0), bound) if math.isfinite(value) else bound


@settings(max_examples=300, deadline=None)
@given(histories, st.lists(st.floats(-5, 4000), min_size=1, max_size=20))
def test_horizons_asked_together_are_those_asked_one_by_one(
    history: tuple[int, float, float], ts: list[float]
) -> None:
    """A prediction asks for its 15 horizons in one vectorised call: the figures are the
    same, to the bit, as the formula's with one scalar 2F1 per horizon."""
    x, t_x, age = history
    bgnbd = PurchaseModel("bgnbd", FITTED.r, FITTED.alpha, FITTED.a, FITTED.b, 0.0, 1)
    for model in (FITTED, bgnbd):
        together = expected_purchases_within(model, ts, x, t_x, age)
        assert together == [one_horizon(model, t, x, t_x, age) for t in ts]


@settings(max_examples=200, deadline=None)
@given(histories, st.floats(0.01, 5000))
def test_predicted_value_is_bounded_by_the_alive_customers_purchases(
    history: tuple[int, float, float], m: float
) -> None:
    x, t_x, age = history
    prediction = predict(
        FITTED,
        SPEND,
        x=x,
        t_x=t_x,
        T=age,
        m=m if x else 0.0,
        horizon_days=365,
        margin=0.3,
        discount_rate=0.08,
        cost_per_day=0.0,
    )
    assert 0.0 <= prediction.purchases_90d <= prediction.purchases_365d + 1e-9
    ceiling = prediction.purchases_365d * prediction.order_value * 0.3
    assert -1e-9 <= prediction.clv <= ceiling + 1e-6


def test_service_cost_is_charged_only_while_the_customer_is_expected_to_stay() -> None:
    common = {"x": 3, "t_x": 100.0, "m": 40.0, "horizon_days": 365, "margin": 0.3}
    fresh = predict(FITTED, SPEND, T=110.0, discount_rate=0.0, cost_per_day=1.0, **common)
    free = predict(FITTED, SPEND, T=110.0, discount_rate=0.0, cost_per_day=0.0, **common)
    assert math.isclose(free.clv - fresh.clv, 365 * fresh.p_alive, rel_tol=1e-9)
    gone = predict(FITTED, SPEND, T=900.0, discount_rate=0.0, cost_per_day=1.0, **common)
    assert gone.p_alive < fresh.p_alive


@settings(max_examples=300, deadline=None)
@given(histories, st.floats(0.05, 0.95))
def test_the_age_p_alive_falls_below_a_threshold_is_where_it_does(
    history: tuple[int, float, float], threshold: float
) -> None:
    x, t_x, _ = history
    age = age_alive_below(FITTED, threshold, x, t_x)
    assert age is not None
    assert age >= t_x - 1e-9
    if age > t_x + 1e-6:
        assert p_alive(FITTED, x, t_x, age * (1 - 1e-9) + t_x * 1e-9) >= threshold - 1e-9
    assert p_alive(FITTED, x, t_x, age + 1e-6 * (1 + age)) < threshold + 1e-9


def test_plain_bg_nbd_never_lets_a_one_time_buyer_go() -> None:
    assert age_alive_below(BG, 0.5, 0, 0) is None
    assert age_alive_below(MBG, 0.5, 0, 0) is not None
