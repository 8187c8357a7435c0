"""Tiers relative to the population: cut points per mode, hysteresis, reasons, bands.

A customer's *position* is where its score stands in the mode's unit: its percentile in
the population (`percentile`), its z-score (`zscore`, optionally of the signed-log
score), or the score itself (`absolute`). A tier is entered at its cut and left only
below the cut less a margin (in the same unit), and a downgrade waits until the
customer has been `min_dwell_days` in its tier. Upgrades are immediate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
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
    #: the same cuts as scores (None: an empty population). Percentile mode: the score a
    #: customer must exceed to reach the position, exactly (positions are per sketch
    #: bucket); zscore mode: the score at the position; absolute mode: the cut itself
    entry_score: dict[str, float | None]
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
            return ranks.reach_threshold(position)  # scores above it reach the position

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
    """The customer's tier as of `cuts.day`, given its previous tier and score.

    Positions (the mode's unit) are what is compared, and every reason quotes the
    numbers of that comparison (streams/tiers.py `Comparison`).
    """
    if is_new:
        return Decision("new", "too little history to judge")
    position = cuts.position(score)
    target = cuts.raw_tier(position)

    def against(tier: str, which: str, *, reached: bool) -> Comparison:
        return Comparison(
            score=score,
            position=position,
            cuts=cuts,
            kind=score_kind,
            tier=tier,
            which=which,
            reached=reached,
        )

    if previous == "new":
        if target == "bronze":  # below the silver cut
            reason = against("silver", "entry", reached=False)
            return Decision(target, f"judged for the first time: {reason.text('bronze')}")
        reason = against(target, "entry", reached=True)
        return Decision(target, f"judged for the first time: {reason.text(target)}")
    if RANK[target] > RANK[previous]:
        reason = against(target, "entry", reached=True)
        return Decision(target, reason.text())
    if RANK[target] == RANK[previous] or previous == "bronze":
        return Decision(previous, "unchanged")
    if position >= cuts.exit[previous]:
        return Decision(previous, "within the hysteresis margin")
    if days_in_tier < settings.min_dwell_days:
        return Decision(
            previous, "a downgrade waits for the minimum dwell time", held_by_dwell=True
        )
    reason = against(previous, "exit", reached=False)
    return Decision(target, reason.text())


SCORE_PLURAL = {"ratio": "ratios", "net_value": "net values", "clv": "CLVs"}
_UNIT = {"percentile": "percentile", "zscore": "z"}


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """A customer's position against one cut, as a tier decision made it; `text()` says
    it with numbers that, read back, satisfy the relation it names:

    - '<score> at <unit> <position> reached the <tier> cut at <unit> <cut> (<scores>
      above <bound>)' when the position is at or above an entry cut;
    - '... fell below the <tier> exit at ...' (<scores> up to <bound>) below an exit;
    - 'places it in <tier>, at or above the <tier> cut ...' / 'places it in bronze,
      below the silver cut ...' for a customer judged for the first time.

    In absolute mode the position is the score and the cut is quoted alone.
    """

    score: float
    position: float
    cuts: Cuts
    kind: str
    tier: str  # whose cut
    which: str  # "entry" or "exit"
    reached: bool  # position >= cut (else below it)

    def text(self, placed_in: str | None = None) -> str:
        cut = (self.cuts.entry if self.which == "entry" else self.cuts.exit)[self.tier]
        relation = ">=" if self.reached else "<"
        unit = _UNIT.get(self.cuts.mode)
        if unit is None:  # absolute: the score is the position
            score_text, cut_text = quoted_pair(self.score, cut, relation, decimals=2)
            where = f"{SCORE_LABEL[self.kind]} {score_text}"
        else:
            places = 1 if unit == "percentile" else 2
            position_text, _ = quoted_pair(self.position, cut, relation, decimals=places)
            score_text, bound_text = self._bound()
            where = f"{SCORE_LABEL[self.kind]} {score_text} at {unit} {position_text}"
            cut_text = f"at {unit} {cut:g}{bound_text}"
        name = "cut" if self.which == "entry" else "exit"
        if placed_in is not None:
            side = "at or above" if self.reached else "below"
            return f"{where} places it in {placed_in}, {side} the {self.tier} {name} {cut_text}"
        verb = "reached" if self.reached else "fell below"
        return f"{where} {verb} the {self.tier} {name} {cut_text}"

    def _bound(self) -> tuple[str, str]:
        """(the score as text, ' (<scores> above <bound>)'): the cut as a score, when it
        separates this score as the position does (always in percentile mode, where it
        is exact; a z-score's inverse can miss by a rounding error, and is then left
        out). The score is shown with the decimals the comparison needs."""
        shown = f"{self.score:.2f}"
        scores = self.cuts.entry_score if self.which == "entry" else self.cuts.exit_score
        bound = scores[self.tier]
        if bound is None or math.isinf(bound):
            return shown, ""
        exact = self.cuts.mode == "percentile"  # position >= cut <=> score > bound
        if self.reached:
            relation, words = (">", "above") if exact else (">=", "from")
        else:
            relation, words = ("<=", "up to") if exact else ("<", "below")
        if not _RELATIONS[relation](self.score, bound):
            return shown, ""
        shown, bound_text = quoted_pair(self.score, bound, relation, decimals=2)
        plural = SCORE_PLURAL.get(self.kind, self.kind)
        return shown, f" ({plural} {words} {bound_text})"


_RELATIONS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}


def quoted_pair(value: float, cut: float, relation: str, *, decimals: int) -> tuple[str, str]:
    """`value` and `cut` as text that, read back, still satisfy `relation` (as the numbers
    do): the fewest decimals from `decimals` up that keep it, else the cut rounded away
    from the value."""
    holds = _RELATIONS[relation]
    for places in range(decimals, decimals + 7):
        shown_value, shown_cut = f"{value:.{places}f}", f"{cut:.{places}f}"
        if holds(float(shown_value), float(shown_cut)):
            return shown_value, shown_cut
    step = 10.0**-decimals
    shown_value = f"{value:.{decimals}f}"
    away = float(shown_value) + (-step if relation in (">=", ">") else step)
    return shown_value, f"{away:.{decimals}f}"


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
