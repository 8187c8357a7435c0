"""Tier assignment in each mode, hysteresis, and re-tiering by bands."""

from __future__ import annotations

import math
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.value_config import TieringSettings
from streams.ledger import PartitionLedger
from streams.sketch import ScoreSummary
from streams.tiers import Cuts, decide, make_cuts, recheck_keys

PERCENTILE = TieringSettings(min_dwell_days=7, percentile_margin_points=2.0)


def population(values: list[float], tiering: TieringSettings = PERCENTILE, day: int = 100) -> Cuts:
    summary = ScoreSummary(tiering.sketch_relative_accuracy)
    for value in values:
        summary.add(value)
    return make_cuts(summary, tiering, day)


UNIFORM = population([float(i) for i in range(1, 1001)])  # scores 1..1000


@pytest.mark.parametrize(
    ("score", "tier"),
    [
        (999.0, "vip"),
        (960.0, "vip"),
        (900.0, "gold"),
        (810.0, "gold"),
        (700.0, "silver"),
        (510.0, "silver"),
        (400.0, "bronze"),
        (1.0, "bronze"),
    ],
)
def test_percentile_mode_bands(score: float, tier: str) -> None:
    # top 5 % vip, next 15 % gold, next 30 % silver, the rest bronze
    assert (
        decide(
            previous="new",
            days_in_tier=0,
            score=score,
            is_new=False,
            cuts=UNIFORM,
            settings=PERCENTILE,
            score_kind="ratio",
        ).tier
        == tier
    )


HYSTERESIS: list[tuple[str, str, int, float, str, bool]] = [
    # (why, previous, days in tier, score, expected, held by dwell)
    ("an upgrade is immediate", "silver", 0, 960.0, "vip", False),
    (
        "just below the vip cut (p95): within the 2-point margin, stays",
        "vip",
        30,
        940.0,
        "vip",
        False,
    ),
    ("below the vip exit (p93) after the dwell time: goes down", "vip", 30, 900.0, "gold", False),
    ("below the exit, but only 3 days in vip: waits", "vip", 3, 900.0, "vip", True),
    ("a big fall goes down several tiers at once", "vip", 30, 100.0, "bronze", False),
    ("bronze stays bronze", "bronze", 0, 10.0, "bronze", False),
    ("a new customer is judged without a margin", "new", 0, 940.0, "gold", False),
]


@pytest.mark.parametrize(
    ("why", "previous", "days", "score", "expected", "held"),
    HYSTERESIS,
    ids=[c[0] for c in HYSTERESIS],
)
def test_hysteresis(
    why: str, previous: str, days: int, score: float, expected: str, held: bool
) -> None:
    decision = decide(
        previous=previous,
        days_in_tier=days,
        score=score,
        is_new=False,
        cuts=UNIFORM,
        settings=PERCENTILE,
        score_kind="ratio",
    )
    assert decision.tier == expected
    assert decision.held_by_dwell is held


def test_a_customer_on_a_boundary_does_not_flap() -> None:
    tier = "new"
    since = 0
    history = []
    for day in range(60):
        score = 950.0 + (5.0 if day % 2 else -5.0)  # oscillates around the vip cut
        decision = decide(
            previous=tier,
            days_in_tier=day - since,
            score=score,
            is_new=False,
            cuts=UNIFORM,
            settings=PERCENTILE,
            score_kind="ratio",
        )
        if decision.tier != tier:
            tier, since = decision.tier, day
            history.append(tier)
    assert len(history) <= 2  # judged, and at most one move up: no flapping


def test_new_customers_stay_new() -> None:
    decision = decide(
        previous="new",
        days_in_tier=0,
        score=999.0,
        is_new=True,
        cuts=UNIFORM,
        settings=PERCENTILE,
        score_kind="ratio",
    )
    assert decision.tier == "new"


def test_reasons_say_what_happened() -> None:
    up = decide(
        previous="silver",
        days_in_tier=0,
        score=960.0,
        is_new=False,
        cuts=UNIFORM,
        settings=PERCENTILE,
        score_kind="ratio",
    )
    assert up.reason.startswith("ratio 960.00 at percentile 96.2 reached the vip cut at ")
    down = decide(
        previous="vip",
        days_in_tier=30,
        score=900.0,
        is_new=False,
        cuts=UNIFORM,
        settings=PERCENTILE,
        score_kind="ratio",
    )
    assert "fell below the vip exit" in down.reason


ZSCORE = TieringSettings(mode="zscore", zscore_log_transform=False, min_dwell_days=0)


def test_zscore_mode() -> None:
    # mean 0, standard deviation 1: vip above z 1.645, gold above 0.842, silver above 0
    values = [-1.0, 1.0] * 500
    cuts = population(values, ZSCORE)
    assert cuts.mean == pytest.approx(0.0)
    assert cuts.stddev == pytest.approx(1.0)
    for score, tier in [(2.0, "vip"), (1.0, "gold"), (0.5, "silver"), (-0.5, "bronze")]:
        assert (
            decide(
                previous="new",
                days_in_tier=0,
                score=score,
                is_new=False,
                cuts=cuts,
                settings=ZSCORE,
                score_kind="ratio",
            ).tier
            == tier
        )
    assert cuts.entry_score["vip"] == pytest.approx(1.645)


def test_zscore_with_log_transform_tames_heavy_tails() -> None:
    log_mode = TieringSettings(mode="zscore", zscore_log_transform=True)
    values = [0.5] * 900 + [3.0] * 90 + [10_000.0] * 10  # ten whales
    raw = population(values, ZSCORE)
    logged = population(values, log_mode)
    # without the transform the whales inflate the deviation: the 3.0s are not above 0
    assert raw.position(3.0) < 0
    assert logged.position(3.0) > 0


ABSOLUTE = TieringSettings(
    mode="absolute",
    absolute_vip=5,
    absolute_gold=2,
    absolute_silver=0.5,
    absolute_margin_relative=0.1,
    min_dwell_days=0,
)


@pytest.mark.parametrize(
    ("previous", "score", "tier"),
    [
        ("new", 6.0, "vip"),
        ("new", 4.9, "gold"),
        ("new", 0.5, "silver"),
        ("new", 0.49, "bronze"),
        ("vip", 4.6, "vip"),
        ("vip", 4.4, "gold"),
    ],  # vip exit: 5 - 10 % = 4.5
)
def test_absolute_mode(previous: str, score: float, tier: str) -> None:
    cuts = population([1.0], ABSOLUTE)
    assert (
        decide(
            previous=previous,
            days_in_tier=10,
            score=score,
            is_new=False,
            cuts=cuts,
            settings=ABSOLUTE,
            score_kind="ratio",
        ).tier
        == tier
    )


def test_nothing_to_recheck_when_the_population_did_not_move() -> None:
    keys = list(UNIFORM.ranks.keys)
    assert recheck_keys(UNIFORM, UNIFORM, keys) == set()
    assert recheck_keys(None, UNIFORM, keys) == set()


def tiers_of(
    scores: dict[int, float], previous: dict[int, str], cuts: Cuts, candidates: set[int] | None
) -> dict[int, str]:
    result = dict(previous)
    for customer in scores if candidates is None else candidates:
        result[customer] = decide(
            previous=previous[customer],
            days_in_tier=100,
            score=scores[customer],
            is_new=False,
            cuts=cuts,
            settings=PERCENTILE,
            score_kind="ratio",
        ).tier
    return result


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    size=st.integers(50, 2000),
    shift=st.floats(-0.3, 0.3),
    movers=st.integers(0, 30),
)
def test_rechecking_the_band_gives_the_same_tiers_as_rechecking_everyone(
    seed: int, size: int, shift: float, movers: int
) -> None:
    """The re-tiering shortcut is exact: after the population moves, customers outside
    the bands between the old and new cuts cannot change tier."""
    rng = random.Random(seed)
    scores = {i: rng.lognormvariate(0, 1.5) for i in range(size)}
    ledger = PartitionLedger(0, PERCENTILE.sketch_relative_accuracy)
    for customer, score in scores.items():
        ledger.index(str(customer).encode(), score)
    before = make_cuts(ledger.summary, PERCENTILE, 1)
    tiers = tiers_of(scores, dict.fromkeys(scores, "new"), before, None)
    # the next day: everyone drifts a little, some customers change a lot
    changed = set(rng.sample(sorted(scores), min(movers, size)))
    for customer, old in list(scores.items()):
        score = old * (1 + shift) if customer not in changed else rng.expovariate(1)
        scores[customer] = score
        ledger.index(str(customer).encode(), score)
    after = make_cuts(ledger.summary, PERCENTILE, 2)
    full = tiers_of(scores, tiers, after, None)
    in_band = {int(k) for k in ledger.members_of(recheck_keys(before, after, ledger.members))}
    # a uniform drift moves every score: the customers whose own score changed are
    # candidates anyway (their state was re-valued); here: all of them when shift != 0
    candidates = in_band | changed | (set(scores) if shift else set())
    assert tiers_of(scores, tiers, after, candidates) == full


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), size=st.integers(200, 3000), added=st.integers(1, 20))
def test_a_small_move_rechecks_few_customers(seed: int, size: int, added: int) -> None:
    """Customers whose own score did not change are re-checked only inside the band."""
    rng = random.Random(seed)
    scores = {i: rng.lognormvariate(0, 1.5) for i in range(size)}
    ledger = PartitionLedger(0, PERCENTILE.sketch_relative_accuracy)
    for customer, score in scores.items():
        ledger.index(str(customer).encode(), score)
    before = make_cuts(ledger.summary, PERCENTILE, 1)
    tiers = tiers_of(scores, dict.fromkeys(scores, "new"), before, None)
    for i in range(size, size + added):  # a few newcomers move the cuts a little
        scores[i] = rng.lognormvariate(0, 1.5)
        tiers[i] = "new"
        ledger.index(str(i).encode(), scores[i])
    after = make_cuts(ledger.summary, PERCENTILE, 2)
    in_band = {int(k) for k in ledger.members_of(recheck_keys(before, after, ledger.members))}
    candidates = in_band | set(range(size, size + added))
    assert tiers_of(scores, tiers, after, candidates) == tiers_of(scores, tiers, after, None)
    assert len(in_band) < size  # never everyone for a small move


# -- reasons: the numbers they quote satisfy the relation they name ------------------------

_NUMBER = r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?"
REASON = re.compile(
    rf"^(?:judged for the first time: )?(?:ratio|net value|CLV) (?P<score>{_NUMBER})"
    rf"(?: at (?:percentile|z) (?P<position>{_NUMBER}))? "
    r"(?:(?P<verb>reached|fell below)|places it in \w+, (?P<side>at or above|below)) "
    rf"the (?P<tier>vip|gold|silver) (?:cut|exit) (?:at (?:percentile|z) )?(?P<cut>{_NUMBER})"
    rf"(?: \((?:ratios|net values|CLVs) (?P<words>above|from|up to|below) (?P<bound>{_NUMBER})\))?$"
)
HOLDS = {
    "reached": lambda a, b: a >= b,
    "at or above": lambda a, b: a >= b,
    "fell below": lambda a, b: a < b,
    "below": lambda a, b: a < b,
    "above": lambda a, b: a > b,
    "from": lambda a, b: a >= b,
    "up to": lambda a, b: a <= b,
}


def check_reason(decision_reason: str, score: float, position: float) -> None:
    """The reason parses, its score and position are the decision's (as shown), and every
    comparison it states holds for the numbers it quotes."""
    found = REASON.match(decision_reason)
    assert found, decision_reason
    shown_score = float(found["score"])
    assert abs(shown_score - score) <= 0.005 + 1e-9 * abs(score), decision_reason
    relation = found["verb"] or found["side"]
    compared = shown_score
    if found["position"] is not None:
        compared = float(found["position"])
        assert abs(compared - position) <= 0.05 + 1e-9 * abs(position), decision_reason
    assert HOLDS[relation](compared, float(found["cut"])), decision_reason
    if found["words"] is not None:
        assert HOLDS[found["words"]](shown_score, float(found["bound"])), decision_reason


MODES = {
    "percentile": TieringSettings(min_dwell_days=0),
    "percentile, wide margin": TieringSettings(
        min_dwell_days=0,
        vip_top_percent=2.5,
        gold_next_percent=33.33,
        percentile_margin_points=7.77,
    ),
    "zscore": TieringSettings(mode="zscore", min_dwell_days=0),
    "zscore, no log": TieringSettings(mode="zscore", zscore_log_transform=False, min_dwell_days=0),
    "absolute": TieringSettings(
        mode="absolute", absolute_vip=5, absolute_gold=2, absolute_silver=0.5, min_dwell_days=0
    ),
}


@settings(max_examples=300, deadline=None)
@given(
    mode=st.sampled_from(sorted(MODES)),
    values=st.lists(
        st.one_of(
            st.floats(-50, 5000, allow_nan=False),
            st.sampled_from([0.0, 1.0, -1.0, 155.58, 2.0, 5.0]),
        ),
        min_size=1,
        max_size=300,
    ),
    score=st.one_of(st.floats(-100, 10_000, allow_nan=False), st.sampled_from([1.0, 5.0, 0.5])),
    previous=st.sampled_from(["new", "bronze", "silver", "gold", "vip"]),
)
def test_every_tier_change_reason_states_a_true_comparison(
    mode: str, values: list[float], score: float, previous: str
) -> None:
    tiering = MODES[mode]
    cuts = population(values, tiering)
    decision = decide(
        previous=previous,
        days_in_tier=100,
        score=score,
        is_new=False,
        cuts=cuts,
        settings=tiering,
        score_kind="ratio",
    )
    if decision.tier == previous:
        return  # no tier change, no reason published
    check_reason(decision.reason, score, cuts.position(score))


def test_the_demos_vip_reason_no_longer_contradicts_itself() -> None:
    """Given the demo's case: a ratio of 155.58 in a sketch bucket whose representative
    (the old 'cut' 156.04) lies above it, at percentile 95.1 against the vip cut at 95.
    When the customer is re-tiered from gold,
    Then it becomes vip, and the reason quotes the percentile comparison that decided it
    and the cut as the ratio to exceed, which 155.58 does."""
    values = [1.0] * 949 + [155.58] * 2 + [156.2] * 49  # one sketch bucket around 156
    cuts = population(values)
    decision = decide(
        previous="gold",
        days_in_tier=100,
        score=155.58,
        is_new=False,
        cuts=cuts,
        settings=PERCENTILE,
        score_kind="ratio",
    )
    assert decision.tier == "vip"
    assert decision.reason == (
        "ratio 155.58 at percentile 97.5 reached the vip cut at percentile 95 "
        f"(ratios above {cuts.entry_score['vip']:.2f})"
    )
    assert cuts.entry_score["vip"] is not None
    assert cuts.entry_score["vip"] < 155.58 < cuts.ranks.quantile(0.95)  # (the old cut)  # type: ignore[operator]
    check_reason(decision.reason, 155.58, cuts.position(155.58))


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=1, max_size=200),
    probe=st.floats(-2e4, 2e4, allow_nan=False),
    cut=st.floats(0, 100),
)
def test_the_percentile_cut_score_is_exact(values: list[float], probe: float, cut: float) -> None:
    """A score reaches a percentile exactly when it exceeds the cut's score."""
    summary = ScoreSummary(0.01)
    for value in values:
        summary.add(value)
    ranks = summary.ranks()
    threshold = ranks.reach_threshold(cut)
    assert threshold is not None
    for value in [probe, *values, threshold, math.nextafter(threshold, math.inf)]:
        if math.isfinite(value):
            assert (ranks.percentile(value) >= cut) == (value > threshold), value


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["append", "replace", "erase", "look"]), st.integers(0, 5)))
)
def test_the_queued_task_ids_follow_the_outbox(steps: list[tuple[str, int]]) -> None:
    """However the outbox changes (tasks appended, the list replaced when released, a
    customer's entries filtered out by an erasure), the ids the tiering checks against
    are exactly the outbox's."""
    ledger = PartitionLedger(0, 0.01)
    serial = 0
    for action, n in steps:
        outbox = ledger.progress.outbox
        if action == "append":
            for _ in range(n):
                serial += 1
                outbox.append([1.0, f"t{serial}", "churn_risk", f"c{serial % 3}", "{}"])
        elif action == "replace":
            ledger.progress.outbox = outbox[:n]
        elif action == "erase":
            ledger.erase_customer(f"c{n % 3}".encode(), f"h{n}", 0)
        assert ledger.queued_task_ids() == {entry[1] for entry in ledger.progress.outbox}
