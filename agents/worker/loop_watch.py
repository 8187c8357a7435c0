"""How long something synchronous holds the worker's event loop (a close's chunk, a
ledger checkpoint, a commit's encoding): a timer due every `interval` seconds, and how
late it wakes. Everything on the loop waits that long, ticket priorities included.

Where: a watchdog thread looks at the loop's heartbeat every `interval`; while the loop
is held longer than `SAMPLE_AFTER_SECONDS` it samples the loop thread's stack, and the
log line of a long stall names the code it was found in most often (vipstream's own
innermost frame, and the innermost frame of all). Sampling (agents/faust_port/threads.py)
costs nothing while the loop keeps its beat.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections import Counter
from pathlib import Path
from types import CodeType, FrameType

from agents.faust_port.threads import stack_of
from agents.logs import Throttle
from agents.metrics import Metrics

log = logging.getLogger(__name__)

#: a stall this long gets a log line (at most one every 10 s, with the longest held back)
LOGGED_STALL_SECONDS = 0.5
#: the watchdog samples the loop thread's stack while the loop is held this long
SAMPLE_AFTER_SECONDS = 0.02
_ROOT = str(Path(__file__).resolve().parents[2])
_LIBRARIES = f"{_ROOT}/.venv/"
#: the spot of a garbage collection: it holds the GIL, so the watchdog samples the loop
#: thread when the collection's callbacks run (`FullCollections.callback`, or another's)
GARBAGE_COLLECTION = "python: garbage collection"
_CALLERS = (f"{_ROOT}/agents/", f"{_ROOT}/bench/", f"{_ROOT}/tests/")


def _own(filename: str) -> bool:
    return filename.startswith(_ROOT) and not filename.startswith(_LIBRARIES)


def where(frame: FrameType | None) -> str:
    """`caller > own < innermost` of a stack: vipstream's own innermost frame (what to
    fix), the engine or worker code that called it when that is another frame (which
    step of the close, the tiering, the event path), and the innermost frame of all
    when that is a library's; each as `file:line function`."""
    if frame is not None and frame.f_code in _collector_callbacks():
        return GARBAGE_COLLECTION  # the GIL was held by the collection; this runs after
    innermost = _describe(frame) if frame is not None else "?"
    while frame is not None and not _own(frame.f_code.co_filename):
        frame = frame.f_back
    own = _describe(frame) if frame is not None else "?"
    spot = own if own == innermost else f"{own} < {innermost}"
    caller = frame.f_back if frame is not None else None
    while caller is not None and not caller.f_code.co_filename.startswith(_CALLERS):
        caller = caller.f_back
    if (
        caller is not None
        and frame is not None
        and not frame.f_code.co_filename.startswith(_CALLERS)
    ):
        spot = f"{_describe(caller)} > {spot}"
    return spot


def _collector_callbacks() -> set[CodeType]:
    """The code of every `gc.callbacks` entry (ours times the collection; a library may
    have its own): the loop thread runs them as a collection ends."""
    found = set()
    for callback in gc.callbacks:
        code = getattr(getattr(callback, "__func__", callback), "__code__", None)
        if isinstance(code, CodeType):
            found.add(code)
    return found


def _describe(frame: FrameType) -> str:
    name = frame.f_code.co_filename
    short = name[len(_ROOT) + 1 :] if name.startswith(_ROOT) else Path(name).name
    return f"{short}:{frame.f_lineno} {frame.f_code.co_name}"


class FullCollections:
    """Times Python's full garbage collections (`gc.callbacks`): a full collection
    scans every live object, and with a worker's decoded states (some 300 objects a
    customer) that takes seconds at 100k customers, the event loop held all along.

    `freeze`: after each full collection, the objects that survived it are moved out of
    the collector's sight (`gc.freeze`), so the next one scans only what became
    long-lived since. Reference counting still frees them; what the collector no longer
    finds is a reference cycle among objects frozen alive that dies later (customer
    states hold none; the worker's resident memory per customer shows whether that adds
    up)."""

    def __init__(self, metrics: Metrics, *, freeze: bool = False) -> None:
        self._metrics = metrics
        self._started: float | None = None
        self._freeze = freeze
        #: a full collection ended: freeze its survivors at the next chance (not from
        #: within the collector's callback)
        self.freeze_due = False

    def maybe_freeze(self) -> None:
        if not self.freeze_due:
            return
        self.freeze_due = False
        gc.freeze()  # a splice of lists; counting what is frozen would walk all of it
        self._metrics.gc_freezes.inc()

    def __enter__(self) -> FullCollections:
        gc.callbacks.append(self.callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self.callback)

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            self._metrics.gc_pause.observe(time.perf_counter() - self._started)
            self._started = None
            self.freeze_due = self._freeze


class StallSampler:
    """The watchdog thread: where the loop thread was while its beat was late."""

    def __init__(self, *, interval: float, after: float = SAMPLE_AFTER_SECONDS) -> None:
        self.beat = time.monotonic()
        self._interval = interval
        self._after = after
        self._target = threading.get_ident()
        self._found: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loop-stall-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def take(self) -> Counter[str]:
        """What was sampled since the last call (and forget it)."""
        with self._lock:
            found, self._found = self._found, Counter()
        return found

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if time.monotonic() - self.beat < self._after:
                continue
            frame = stack_of(self._target)
            if frame is None:
                continue
            spot = where(frame)
            del frame
            with self._lock:
                self._found[spot] += 1


async def watch_event_loop(
    metrics: Metrics,
    *,
    interval: float = 0.01,
    logged: float = LOGGED_STALL_SECONDS,
    gc_freeze: bool = False,
) -> None:
    """Observe every stall; log those of `logged` seconds or more (one line per 10 s at
    most: with how many were held back, the longest, and where the loop was held in all
    of them). Time the full garbage collections, and freeze their survivors if
    `gc_freeze` (`FullCollections`)."""
    loop = asyncio.get_running_loop()
    throttle = Throttle(10.0)
    longest_held = 0.0
    spots: Counter[str] = Counter()
    sampler = StallSampler(interval=interval)
    sampler.start()
    collections = FullCollections(metrics, freeze=gc_freeze).__enter__()
    try:
        while True:
            started = loop.time()
            sampler.beat = time.monotonic()
            await asyncio.sleep(interval)
            sampler.beat = time.monotonic()
            collections.maybe_freeze()
            stall = max(0.0, loop.time() - started - interval)
            metrics.loop_stall.observe(stall)
            found = sampler.take()
            if stall < logged:
                continue
            longest_held = max(longest_held, stall)
            spots.update(found)
            allowed, held = throttle.allow("stall")
            if allowed:
                spot = spots.most_common(1)[0][0] if spots else "?"
                log.warning(
                    "the event loop was held for %.2fs, mostly in %s (%d more stalls over "
                    "%.2fs held back, the longest %.2fs)",
                    stall,
                    spot,
                    held,
                    logged,
                    longest_held,
                    extra={
                        "event": "event_loop_stalled",
                        "seconds": round(stall, 3),
                        "held_back": held,
                        "longest_seconds": round(longest_held, 3),
                        "where": spot,
                        #: sampled every `interval` while held, over the stalls of this line
                        "samples": dict(spots.most_common(8)),
                    },
                )
                longest_held = 0.0
                spots.clear()
    finally:
        collections.__exit__()
        sampler.stop()
