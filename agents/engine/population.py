"""Merging the partitions' published summaries of a day into the population of that
day: the same messages give every worker the same cut points (streams.tiers.make_cuts),
whatever the order they arrived in."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents.engine.book import day_text
from agents.engine.summaries import SummaryBus
from agents.logs import Throttle
from agents.metrics import Metrics
from agents.settings import Settings
from schemas.value_config import PredictionSettings
from streams.history import merged_sample
from streams.ledger import next_merge_day, sum_counts
from streams.predictive import PopulationModel, fit_population, model_from_json
from streams.report import model_report
from streams.sketch import ScoreSummary
from streams.tiers import Cuts, make_cuts
from streams.units import MICROS_PER_DAY, MICROS_PER_SECOND
from streams.value import expected_lifetime_years

log = logging.getLogger(__name__)

_KEPT_CUTS = 4  # days of cut points kept in memory


@dataclass
class GlobalDay:
    """The merged population of one closed day."""

    cuts: Cuts
    churned_share: float | None
    lifetime_years: float
    #: the purchase and spend models in use as of this day (None: not fitted yet)
    model: PopulationModel | None = None
    #: why there is no model yet (None: there is one, or no refit day seen)
    model_pending: str | None = None


def is_fit_day(day: int, settings: PredictionSettings) -> bool:
    """Whether the population model is fitted on this closed day (and the partitions
    publish their samples with its summaries)."""
    return settings.enabled and day % settings.refit_days == 0


class Population:
    """The merged days (the latest few), and the whole-system counts on the bus."""

    def __init__(
        self, settings: Settings, bus: SummaryBus, metrics: Metrics, clock: Callable[[], float]
    ) -> None:
        self._settings = settings
        self._bus = bus
        self._metrics = metrics
        self._clock = clock
        self._partitions = settings.kafka.partitions
        self._alpha = settings.tiering.sketch_relative_accuracy
        self._throttle = Throttle(10.0)
        self.days: dict[int, GlobalDay] = {}
        self.model: PopulationModel | None = None
        #: why there is no model yet (None: there is one, or no fit day was merged)
        self.model_pending: str | None = None

    def maybe_merge(self) -> None:
        """Merge every day each partition offers (streams.ledger.next_merge_day)."""
        messages = self._bus.latest
        if len(messages) < self._partitions:
            return
        order = range(self._partitions)
        if self.model is None:
            self._adopt_model([messages[p] for p in order])
        offered = [[int(d) for d in messages[p].get("days", {})] for p in order]
        started = [messages[p].get("started_day") for p in order]
        empty = {"summary": ScoreSummary(self._alpha).to_json(), "buyers": 0, "silent": 0}
        while True:
            day = next_merge_day(max(self.days) if self.days else None, offered, started)
            if day is None:
                return
            # a partition that started after `day` has nobody in it that day
            self._merge(day, [messages[p]["days"].get(str(day), empty) for p in order])

    def _merge(self, day: int, parts: list[dict[str, Any]]) -> None:
        summary = ScoreSummary.merged(
            self._alpha, (ScoreSummary.from_json(p["summary"]) for p in parts)
        )
        buyers = sum(p["buyers"] for p in parts)
        silent = sum(p["silent"] for p in parts)
        share = silent / buyers if buyers else None
        cuts = make_cuts(summary, self._settings.tiering, day)
        if is_fit_day(day, self._settings.prediction):
            self._fit(day, parts)
        self.days[day] = GlobalDay(
            cuts,
            share,
            expected_lifetime_years(self._settings.clv, share),
            self.model,
            self.model_pending,
        )
        for old in sorted(self.days)[:-_KEPT_CUTS]:
            del self.days[old]
        self._metrics.distribution_day.set((day + 1) * MICROS_PER_DAY / MICROS_PER_SECOND)
        self._metrics.distribution_population.set(summary.count)
        self._metrics.distribution_merged_at.set(self._clock())
        allowed, held = self._throttle.allow("merged")
        if allowed:  # a backfill merges thousands of days: one line per 10 s is enough
            log.info(
                "population of %s merged: %d judged customers; cuts %s%s",
                day_text(day),
                summary.count,
                _cuts_text(cuts),
                f" ({held} more days merged since the last line)" if held else "",
                extra={
                    "event": "population_merged",
                    "day": day_text(day),
                    "judged": summary.count,
                    "held_back": held,
                },
            )

    def _adopt_model(self, messages: list[dict[str, Any]]) -> None:
        """A worker that starts again takes the model its partitions' owners used (the
        latest fit every worker made alike), instead of none until the next refit day;
        or, with none yet, why not (as of the partition that closed the latest day)."""
        if not self._settings.prediction.enabled:
            return
        fitted = [m["model"] for m in messages if m.get("model") and "day" in m["model"]]
        if fitted:
            self.model = model_from_json(max(fitted, key=lambda m: int(m["day"])))
            self.model_pending = None
            self._show(self.model)
            return
        waiting = [m for m in messages if m.get("model") and "pending" in m["model"]]
        if waiting and self.model_pending is None:
            latest = max(waiting, key=lambda m: (m.get("closed_day") or 0, -int(m["partition"])))
            self.model_pending = str(latest["model"]["pending"])

    def _fit(self, day: int, parts: list[dict[str, Any]]) -> None:
        """Fit the population model on the partitions' merged sample of `day`: the same
        messages give every worker the same sample, in the same order, and the same fit."""
        prediction = self._settings.prediction
        sample = merged_sample((p.get("sample") or [] for p in parts), prediction.sample_customers)
        started = time.perf_counter()
        result = fit_population(
            sample,
            day,
            variant=prediction.variant,
            min_customers=prediction.min_customers,
            min_repeat_buyers=prediction.min_repeat_buyers,
        )
        if isinstance(result, str):
            self.model_pending = result
            allowed, _ = self._throttle.allow("model-pending")
            if allowed:
                log.info(
                    "population model not fitted on %s: %s (%d buyers)",
                    day_text(day),
                    result,
                    len(sample),
                    extra={
                        "event": "model_not_fitted",
                        "day": day_text(day),
                        "reason": result,
                        "buyers": len(sample),
                    },
                )
            return
        self.model, self.model_pending = result, None
        self._show(result)
        purchases, spend = result.purchases, result.spend
        allowed, _ = self._throttle.allow("model-fitted")
        if allowed:
            log.info(
                "population model fitted on %s (%d buyers, %.2fs): %s r=%.4g alpha=%.4g "
                "a=%.4g b=%.4g LL=%.1f; spend p=%.4g q=%.4g gamma=%.4g LL=%.1f",
                day_text(day),
                purchases.customers,
                time.perf_counter() - started,
                purchases.variant,
                purchases.r,
                purchases.alpha,
                purchases.a,
                purchases.b,
                purchases.log_likelihood,
                spend.p,
                spend.q,
                spend.gamma,
                spend.log_likelihood,
                extra={
                    "event": "model_fitted",
                    "day": day_text(day),
                    "model": model_report(result),
                },
            )

    def _show(self, model: PopulationModel) -> None:
        """The model in use, as gauges."""
        purchases, spend = model.purchases, model.spend
        metrics = self._metrics
        for name, value in (("r", purchases.r), ("alpha", purchases.alpha)):
            metrics.model_parameter.labels("purchases", name).set(value)
        for name, value in (("a", purchases.a), ("b", purchases.b)):
            metrics.model_parameter.labels("purchases", name).set(value)
        for name, value in (("p", spend.p), ("q", spend.q), ("gamma", spend.gamma)):
            metrics.model_parameter.labels("spend", name).set(value)
        metrics.model_log_likelihood.labels("purchases").set(purchases.log_likelihood)
        metrics.model_log_likelihood.labels("spend").set(spend.log_likelihood)
        metrics.model_day.set((model.day + 1) * MICROS_PER_DAY / MICROS_PER_SECOND)
        metrics.model_sample.set(purchases.customers)

    def latest_day(self) -> GlobalDay | None:
        return self.days[max(self.days)] if self.days else None

    def tier_counts(self) -> tuple[int | None, dict[str, int]]:
        """(the day every partition's tiers are decided for, customers per tier then).

        Partitions tier in lock-step, so at any moment they are at most one day apart;
        while they differ, the counts mix the two days and the earlier day is reported.
        """
        messages = list(self._bus.latest.values())
        days = [m.get("tiered_day") for m in messages]
        counts: dict[str, int] = {}
        for message in messages:
            for tier, n in (message.get("tier_counts") or {}).items():
                counts[tier] = counts.get(tier, 0) + n
        known = [d for d in days if d is not None]
        complete = len(messages) == self._partitions and len(known) == len(days)
        return (min(known) if complete and known else None), counts

    def emitted_counts(self) -> dict[str, int]:
        """Outputs emitted by the tiering of every partition, whole-system (as of each
        partition's last published tiered day; keys as in `Progress.emitted`)."""
        return sum_counts(m.get("emitted") for m in self._bus.latest.values())


def _cuts_text(cuts: Cuts) -> str:
    parts = []
    for tier in ("vip", "gold", "silver"):
        score = cuts.entry_score[tier]
        parts.append(f"{tier} {'-' if score is None else f'{score:.3g}'}")
    return ", ".join(parts)
