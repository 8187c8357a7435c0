"""Tiers relative to the population: cut points per mode, hysteresis, reasons, bands.

A customer's *position* is where its score stands in the mode's unit: its percentile in
the population (`percentile`), its z-score (`zscore`, optionally of the signed-log
score), or the score itself (`absolute`). A tier is entered at its cut and left only
below the cut less a margin (in the same unit), and a downgrade waits until the
customer has been `min_dwell_days` in its tier. Upgrades are immediate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from schemas.value_config import TieringSettings
from streams.sketch import Ranks, ScoreSummary, inverse_signed_log, signed_log

JUDGED_TIERS = ("vip", "gold", "silver", "bronze")  # best first
RANK = {"new": -1, "bronze": 0, "silver": 1, "gold": 2, "vip": 3}
SCORE_LABEL = {"ratio": "ratio", "net_value": "net value", "clv": "CLV"}


@dataclass(frozen=True)
class Cuts:
    """The cut points of one closed day, in position units and as scores."""

    mode: str
    day: int  # the closed day they belong to
    population: int  # judged customers in the summary
    entry: dict[str, float]  # vip/gold/silver: position at or above which the tier starts
    exit: dict[str, float]  # position below which a customer in the tier leaves it
    entry_score: dict[str, float | None]  # the same cuts as scores (None: empty population)
    exit_score: dict[str, float | None]
    mean: float
    stddev: float
    log_transform: bool
    ranks: Ranks

    def position(self, score: float) -> float:
        if self.mode == "percentile":
            return self.ranks.percentile(score)
        if self.mode == "zscore":
            x = signed_log(score) if self.log_transform else score
            return (x - self.mean) / self.stddev if self.stddev > 0 else 0.0
        return score

    def percentile(self, score: float) -> float:
        return self.ranks.percentile(score)

    def raw_tier(self, position: float) -> str:
        for tier in ("vip", "gold", "silver"):
            if position >= self.entry[tier]:
                return tier
        return "bronze"


def make_cuts(summary: ScoreSummary, settings: TieringSettings, day: int) -> Cuts:
    ranks = summary.ranks()
    log = settings.zscore_log_transform
    mean = summary.mean(log=log)
    std = summary.stddev(log=log)
    entry: dict[str, float]
    exit_: dict[str, float]
    if settings.mode == "percentile":
        vip, gold, silver = settings.percentile_cuts()
        entry = {"vip": vip, "gold": gold, "silver": silver}
        margin = settings.percentile_margin_points
        exit_ = {t: p - margin for t, p in entry.items()}

        def to_score(position: float) -> float | None:
            return ranks.quantile(min(max(position / 100.0, 0.0), 1.0))

    elif settings.mode == "zscore":
        entry = {
            "vip": settings.zscore_vip,
            "gold": settings.zscore_gold,
            "silver": settings.zscore_silver,
        }
        exit_ = {t: z - settings.zscore_margin for t, z in entry.items()}

        def to_score(position: float) -> float | None:
            if not summary.count:
                return None
            x = mean + position * std
            return inverse_signed_log(x) if log else x

    else:
        entry = {
            "vip": settings.absolute_vip,
            "gold": settings.absolute_gold,
            "silver": settings.absolute_silver,
        }
        rel = settings.absolute_margin_relative
        exit_ = {t: s - rel * abs(s) for t, s in entry.items()}

        def to_score(position: float) -> float | None:
            return position

    return Cuts(
        mode=settings.mode,
        day=day,
        population=summary.count,
        entry=entry,
        exit=exit_,
        entry_score={t: to_score(p) for t, p in entry.items()},
        exit_score={t: to_score(p) for t, p in exit_.items()},
        mean=mean,
        stddev=std,
        log_transform=log,
        ranks=ranks,
    )


@dataclass(frozen=True, slots=True)
class Decision:
    tier: str
    reason: str
    held_by_dwell: bool = False  # a downgrade is due but waits for min_dwell_days


def decide(
    *,
    previous: str,
    days_in_tier: int,
    score: float,
    is_new: bool,
    cuts: Cuts,
    settings: TieringSettings,
    score_kind: str,
) -> Decision:
    """The customer's tier as of `cuts.day`, given its previous tier and score."""
    if is_new:
        return Decision("new", "too little history to judge")
    position = cuts.position(score)
    target = cuts.raw_tier(position)
    label = _describe(score, position, cuts, score_kind)
    if previous == "new":
        return Decision(
            target,
            f"judged for the first time: {label} places it in {target}" + _cut_text(cuts, target),
        )
    if RANK[target] > RANK[previous]:
        return Decision(
            target, f"{label} rose above the {target} cut {_cut_value(cuts, target, 'entry')}"
        )
    if RANK[target] == RANK[previous] or previous == "bronze":
        return Decision(previous, "unchanged")
    if position >= cuts.exit[previous]:
        return Decision(previous, "within the hysteresis margin")
    if days_in_tier < settings.min_dwell_days:
        return Decision(
            previous, "a downgrade waits for the minimum dwell time", held_by_dwell=True
        )
    return Decision(
        target, f"{label} fell below the {previous} exit {_cut_value(cuts, previous, 'exit')}"
    )


def _describe(score: float, position: float, cuts: Cuts, kind: str) -> str:
    text = f"{SCORE_LABEL[kind]} {score:.2f}"
    if cuts.mode == "percentile":
        return f"{text} (percentile {position:.1f})"
    if cuts.mode == "zscore":
        return f"{text} (z {position:.2f})"
    return text


def _cut_value(cuts: Cuts, tier: str, which: str) -> str:
    score = (cuts.entry_score if which == "entry" else cuts.exit_score)[tier]
    position = (cuts.entry if which == "entry" else cuts.exit)[tier]
    shown = "-" if score is None else f"{score:.2f}"
    if cuts.mode == "percentile":
        return f"{shown} (percentile {position:g})"
    if cuts.mode == "zscore":
        return f"{shown} (z {position:g})"
    return shown


def _cut_text(cuts: Cuts, tier: str) -> str:
    if tier == "bronze":
        return ""
    return f" (cut {_cut_value(cuts, tier, 'entry')})"


def recheck_keys(previous: Cuts | None, current: Cuts, keys: Iterable[int]) -> set[int]:
    """The sketch buckets (of `keys`) whose customers may change tier between two days'
    cuts although their own score did not change. Exact, and O(buckets), not O(customers):

    - percentile: every customer of a bucket has the bucket's percentile, so a bucket
      needs a re-check when its percentile crossed an entry or exit threshold;
    - zscore: the position grows with the score, so only scores between a threshold's
      old and new score value can cross it (plus the buckets holding those values);
    - absolute: the thresholds never move.
    """
    if previous is None or current.mode == "absolute":
        return set()
    keys = list(keys)
    if current.mode == "percentile":
        thresholds = [*current.entry.values(), *current.exit.values()]
        mapping = current.ranks.mapping
        same_mapping = previous.ranks.mapping == mapping
        found = set()
        for key in keys:
            if same_mapping:  # always, with one sketch accuracy: remembered per day
                before = previous.ranks.bucket_percentile(key)
                after = current.ranks.bucket_percentile(key)
            else:
                value = mapping.value(key)
                before = previous.ranks.percentile(value)
                after = current.ranks.percentile(value)
            if before != after and any((before >= t) != (after >= t) for t in thresholds):
                found.add(key)
        return found
    mapping = current.ranks.mapping
    ranges = []
    for tier in ("vip", "gold", "silver"):
        for which in ("entry_score", "exit_score"):
            old = getattr(previous, which)[tier]
            new = getattr(current, which)[tier]
            if old is None or new is None or old == new:
                continue
            low, high = sorted((mapping.key(old), mapping.key(new)))
            ranges.append((low - 1, high + 1))
    return {key for key in keys if any(low <= key <= high for low, high in ranges)}
