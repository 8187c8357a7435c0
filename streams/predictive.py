"""Predictive customer value: who will keep buying, and how much.

Purchase counts follow the BG/NBD family (Fader, Hardie and Lee 2005, "Counting your
customers the easy way"): while alive a customer buys as a Poisson process whose rate
varies across customers as Gamma(r, alpha); a customer may drop out, with a probability
that varies as Beta(a, b). vipstream ships the MBG/NBD variant (Batislam, Denizel and
Filiztekin 2007): a customer may drop out right after the first purchase too, so a
customer who never bought again after the first order is not certain to be alive, as
plain BG/NBD (kept here for the reference fit) would have it: with BG/NBD every one-time
buyer has P(alive) = 1 for ever, which is exactly the customers a churn rule must not
ask the dialer to call by the thousand. Pareto/NBD has the same property but needs
Gaussian hypergeometric functions in its likelihood; MBG/NBD's is closed form.

Spend per purchase follows Gamma-Gamma (Fader, Hardie and Lee 2005, "RFM and CLV").

A customer's history is (x, t_x, T): x repeat purchases (purchase days after the first;
several orders on one day count once), t_x the time of the last purchase and T the age,
both from the first purchase, and m the mean spend of the repeat purchases. Time is in
whatever unit the caller uses (vipstream: days; the papers: weeks); alpha scales with it.

Pure functions: numpy and scipy, no I/O. Fits are deterministic for the same input in
the same order (callers sort it)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaln, hyp2f1

from streams.history import SampleEntry
from streams.units import MONEY_SCALE

if TYPE_CHECKING:  # scipy.optimize is imported where a fit runs: a third of a second
    from scipy.optimize import OptimizeResult  # of every worker's and command's start

Variant = Literal["bgnbd", "mbgnbd"]
Floats = NDArray[np.float64]

#: Optimiser settings: tight enough to reproduce published parameters to 4 digits.
_TOLERANCE = 1e-15
_MAX_ITERATIONS = 2000
_LOG_BOUND = 12.0


@dataclass(frozen=True, slots=True)
class PurchaseModel:
    """Fitted population parameters of the purchase process."""

    variant: Variant
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int


@dataclass(frozen=True, slots=True)
class SpendModel:
    """Fitted Gamma-Gamma parameters of spend per purchase (customers with x > 0)."""

    p: float
    q: float
    gamma: float
    log_likelihood: float
    customers: int


def _arrays(*values: ArrayLike) -> list[Floats]:
    return [np.asarray(v, dtype=np.float64) for v in values]


def purchase_log_likelihood(
    variant: Variant,
    params: tuple[float, float, float, float],
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
) -> Floats:
    """Each customer's log-likelihood of (x, t_x, T) under (r, alpha, a, b)."""
    r, alpha, a, b = params
    xs, ts, ages = _arrays(x, t_x, T)
    common = gammaln(r + xs) - gammaln(r) + r * math.log(alpha)
    gone = -(r + xs) * np.log(alpha + ages)  # alive through T
    if variant == "bgnbd":
        beta = gammaln(a + b) + gammaln(b + xs) - gammaln(b) - gammaln(a + b + xs)
        with np.errstate(divide="ignore", invalid="ignore"):
            odds = math.log(a) - np.log(np.maximum(b + xs - 1, 1e-300))
            dropped = np.where(xs > 0, odds - (r + xs) * np.log(alpha + ts), -np.inf)
        return np.asarray(common + beta + np.logaddexp(gone, dropped), dtype=np.float64)
    beta = gammaln(a + b) + gammaln(b + xs + 1) - gammaln(b) - gammaln(a + b + xs + 1)
    dropped = math.log(a) - np.log(b + xs) - (r + xs) * np.log(alpha + ts)
    return np.asarray(common + beta + np.logaddexp(gone, dropped), dtype=np.float64)


def fit_purchases(
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    *,
    variant: Variant = "mbgnbd",
    weights: ArrayLike | None = None,
    start: tuple[float, float, float, float] | None = None,
) -> PurchaseModel:
    """Maximum likelihood (r, alpha, a, b), optimised on their logarithms from `start`
    (default all 1: the same start gives the same fit on every worker). `weights`: how
    many customers share each row (grouped histories)."""
    xs, ts, ages = _arrays(x, t_x, T)
    counts = np.ones_like(xs) if weights is None else np.asarray(weights, dtype=np.float64)
    total = float(counts.sum())
    if total <= 0:
        raise ValueError("no customers to fit")

    def negative(log_params: Floats) -> float:
        params = np.exp(log_params)
        ll = purchase_log_likelihood(variant, tuple(params), xs, ts, ages)
        # an exactly rounded sum: a BLAS dot product sums in a CPU-dependent order,
        # and L-BFGS-B's finite differences turn its last bit into a different fit
        value = -math.fsum((counts * ll).tolist()) / total
        return value if math.isfinite(value) else 1e300

    best = _minimise(negative, start or (1.0, 1.0, 1.0, 1.0))
    r, alpha, a, b = (float(v) for v in np.exp(best.x))
    return PurchaseModel(variant, r, alpha, a, b, -float(best.fun) * total, round(total))


def _minimise(negative: Callable[[Floats], float], start: Sequence[float]) -> OptimizeResult:
    """L-BFGS-B on the parameters' logarithms, kept within e^-_LOG_BOUND..e^_LOG_BOUND (a
    population where nobody seems to drop out drives a and b towards infinity)."""
    from scipy.optimize import minimize  # noqa: PLC0415 - deferred: see the imports

    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(start)
    return minimize(
        negative,
        np.log(np.asarray(start, dtype=np.float64)),
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": _TOLERANCE, "gtol": 1e-9, "maxiter": _MAX_ITERATIONS},
    )


def p_alive(model: PurchaseModel, x: float, t_x: float, T: float) -> float:
    """P(the customer is still alive at T | x, t_x, T)."""
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    if model.variant == "bgnbd":
        if x <= 0:
            return 1.0
        odds = a / (b + x - 1)
    else:
        odds = a / (b + x)
    log_ratio = (r + x) * (math.log(alpha + T) - math.log(alpha + t_x))
    log_term = math.log(odds) + log_ratio
    if log_term > 700:
        return 0.0
    return 1.0 / (1.0 + math.exp(log_term))


def age_alive_below(model: PurchaseModel, threshold: float, x: float, t_x: float) -> float | None:
    """The age T from which P(alive | x, t_x, T) < `threshold` with no new purchase (the
    probability only falls with silence): solving the closed form for T. None: never
    (plain BG/NBD holds one-time buyers alive)."""
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    if model.variant == "bgnbd":
        if x <= 0:
            return None
        odds = a / (b + x - 1)
    else:
        odds = a / (b + x)
    # P < threshold  <=>  odds * ((alpha + T) / (alpha + t_x))^(r + x) > 1/threshold - 1
    log_ratio = (math.log(1.0 / threshold - 1.0) - math.log(odds)) / (r + x)
    if log_ratio > 700:
        return None
    return (alpha + t_x) * math.exp(max(log_ratio, 0.0)) - alpha


def expected_purchases(
    model: PurchaseModel,
    t: float,
    x: float,
    t_x: float,
    T: float,
) -> float:
    """E[purchases in (T, T + t] | x, t_x, T] (Fader et al. 2005, eq. 10; Batislam et al.
    2007 for MBG/NBD)."""
    return expected_purchases_within(model, [t], x, t_x, T)[0]


def expected_purchases_within(
    model: PurchaseModel,
    ts: Sequence[float],
    x: float,
    t_x: float,
    T: float,
) -> list[float]:
    """`expected_purchases` for several horizons `ts` at once: one vectorised 2F1 and
    one P(alive) instead of one each per horizon (a prediction asks for 15)."""
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    alive = p_alive(model, x, t_x, T)
    zs = np.array([t / (alpha + T + t) if t > 0 else 0.0 for t in ts])
    if model.variant == "bgnbd":
        lead = (a + b + x - 1) / (a - 1)
        hypers = hyp2f1(r + x, b + x, a + b + x - 1, zs).tolist()
    else:
        lead = (a + b + x) / (a - 1)
        hypers = hyp2f1(r + x, b + x + 1, a + b + x, zs).tolist()
    found = []
    for t, hyper in zip(ts, hypers, strict=True):
        if t <= 0:
            found.append(0.0)
            continue
        shrink = ((alpha + T) / (alpha + T + t)) ** (r + x)
        value = lead * (1.0 - shrink * hyper) * alive
        # a bound: what the customer buys if alive, at its posterior mean rate, through
        # the whole horizon. 2F1 loses precision for long histories with far horizons:
        # the expectation is clamped to [0, bound], and is the bound where 2F1 overflows.
        bound = (r + x) / (alpha + T) * t * alive
        found.append(min(max(value, 0.0), bound) if math.isfinite(value) else bound)
    return found


def spend_log_likelihood(params: tuple[float, float, float], x: ArrayLike, m: ArrayLike) -> Floats:
    """Each customer's Gamma-Gamma log-likelihood of mean spend m over x > 0 purchases
    (the constant terms in the individual spends are left out, as in the paper)."""
    p, q, gamma = params
    xs, ms = _arrays(x, m)
    px = p * xs
    value = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * math.log(gamma)
        + (px - 1) * np.log(ms)
        + px * np.log(xs)
        - (px + q) * np.log(xs * ms + gamma)
    )
    return np.asarray(value, dtype=np.float64)


def fit_spend(
    x: ArrayLike, m: ArrayLike, *, start: tuple[float, float, float] | None = None
) -> SpendModel:
    """Maximum likelihood (p, q, gamma) from repeat buyers (x > 0, m > 0 only)."""
    xs, ms = _arrays(x, m)
    keep = (xs > 0) & (ms > 0)
    xs, ms = xs[keep], ms[keep]
    if not len(xs):
        raise ValueError("no repeat buyers to fit")

    def negative(log_params: Floats) -> float:
        params = np.exp(log_params)
        value = -float(spend_log_likelihood(tuple(params), xs, ms).mean())
        return value if math.isfinite(value) else 1e300

    best = _minimise(negative, start or (1.0, 1.0, 1.0))
    p, q, gamma = (float(v) for v in np.exp(best.x))
    return SpendModel(p, q, gamma, -float(best.fun) * len(xs), len(xs))


def expected_spend(model: SpendModel, x: float, m: float) -> float:
    """E[spend per purchase | x repeat purchases of mean m]: the population mean
    p gamma / (q - 1) moved towards the customer's own mean as x grows."""
    p, q, gamma = model.p, model.q, model.gamma
    if q <= 1:  # no finite population mean: the customer's own figures only
        return m if x > 0 else 0.0
    if x <= 0 or m <= 0:
        return p * gamma / (q - 1)
    return p * (gamma + x * m) / (p * x + q - 1)


@dataclass(frozen=True, slots=True)
class Prediction:
    """One customer's predicted value, as of T."""

    p_alive: float
    purchases_90d: float
    purchases_365d: float
    order_value: float
    clv: float  # discounted expected margin over the horizon, less expected service cost


def predict(
    purchases: PurchaseModel,
    spend: SpendModel,
    *,
    x: float,
    t_x: float,
    T: float,
    m: float,
    horizon_days: int,
    margin: float,
    discount_rate: float,
    cost_per_day: float,
    step_days: int = 30,
) -> Prediction:
    """Predicted CLV: the expected purchases of each `step_days` step over the horizon
    times the expected order value and the margin, discounted per step at the yearly
    `discount_rate`; less the customer's own service cost per day over the days it is
    expected to stay (P(alive) x the discounted horizon). Time unit: days."""
    alive = p_alive(purchases, x, t_x, T)
    value = expected_spend(spend, x, m)
    clv, before = 0.0, 0.0
    step_rate = (1.0 + discount_rate) ** (step_days / 365.0) - 1.0
    discounted_days = 0.0
    steps = max(1, math.ceil(horizon_days / step_days))
    ends = [min(step * step_days, horizon_days) for step in range(1, steps + 1)]
    *cumulatives, purchases_90d, purchases_365d = expected_purchases_within(
        purchases, [*ends, 90, 365], x, t_x, T
    )
    for step, (end, cumulative) in enumerate(zip(ends, cumulatives, strict=True), start=1):
        factor = (1.0 + step_rate) ** -step
        clv += (cumulative - before) * value * margin * factor
        discounted_days += (end - (step - 1) * step_days) * factor
        before = cumulative
    clv -= cost_per_day * alive * discounted_days
    return Prediction(
        p_alive=alive,
        purchases_90d=purchases_90d,
        purchases_365d=purchases_365d,
        order_value=value,
        clv=clv,
    )


@dataclass(frozen=True, slots=True)
class PopulationModel:
    """The purchase and spend models fitted on one closed day's sample (time in days)."""

    day: int
    purchases: PurchaseModel
    spend: SpendModel


def fit_population(
    entries: Sequence[SampleEntry],
    day: int,
    *,
    variant: Variant,
    min_customers: int,
    min_repeat_buyers: int,
) -> PopulationModel | str:
    """Both models from a merged sample (streams/history.py HistorySample), as of the end
    of `day`: the model, or why there is none yet (without counts: a late first purchase
    can enter the sample a close later, and /tiers must not differ for it). Entries in
    hash order, so every worker fits the same numbers in the same order."""
    if len(entries) < min_customers:
        return f"fewer than {min_customers} buyers in the sample"
    x = np.array([e[2] for e in entries], dtype=np.float64)
    t_x = np.array([e[3] for e in entries], dtype=np.float64)
    age = np.array([day - e[1] for e in entries], dtype=np.float64)
    spend = np.array([e[4] for e in entries], dtype=np.float64) / MONEY_SCALE
    mean = np.divide(spend, x, out=np.zeros_like(spend), where=x > 0)
    repeaters = int(np.count_nonzero((x > 0) & (mean > 0)))
    if repeaters < min_repeat_buyers:
        return f"fewer than {min_repeat_buyers} repeat buyers in the sample"
    # customers with the same (x, t_x, T) contribute the same likelihood: one row each,
    # weighted (in days, most one-time buyers share their row with others)
    rows, counts = np.unique(np.stack([x, t_x, age], axis=1), axis=0, return_counts=True)
    purchases = fit_purchases(rows[:, 0], rows[:, 1], rows[:, 2], variant=variant, weights=counts)
    return PopulationModel(day, purchases, fit_spend(x, mean))


def model_to_json(model: PopulationModel) -> dict[str, Any]:
    """The fitted model as plain values (it travels on the summaries bus)."""
    purchases, spend = model.purchases, model.spend
    return {
        "day": model.day,
        "purchases": [
            purchases.variant,
            purchases.r,
            purchases.alpha,
            purchases.a,
            purchases.b,
            purchases.log_likelihood,
            purchases.customers,
        ],
        "spend": [spend.p, spend.q, spend.gamma, spend.log_likelihood, spend.customers],
    }


def model_from_json(data: dict[str, Any]) -> PopulationModel:
    variant, r, alpha, a, b, ll, customers = data["purchases"]
    p, q, gamma, spend_ll, spenders = data["spend"]
    return PopulationModel(
        int(data["day"]),
        PurchaseModel(variant, r, alpha, a, b, ll, customers),
        SpendModel(p, q, gamma, spend_ll, spenders),
    )
