"""The backfill figure: `vipstream backfill --dry-run` on a year of 2,000 customers, one
process against `--processes N`, in the same run.

Each measurement is a fresh `vipstream backfill --dry-run --quiet` (as an operator runs
it: the figure is the one the command prints, its own events/s, which counts from the
first pass over the file to the last state; the interpreter's start-up is outside it),
the process counts alternated (1, N, 1, N, ...) so a change in the machine's load hits
both alike; the medians and the median of the pairs' ratios are reported. The CPU
seconds of each run, children included, say how much the split costs: on a machine
whose cores are busy with other work, the wall-clock ratio is bounded by what the
scheduler gives, not by the code.

    python -m bench.backfill [--customers 2000] [--repeats 5] [--processes 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.tools.simulate_io import write_jsonl
from agents.tools.simulator import SimulationConfig, Simulator

ROOT = Path(__file__).resolve().parents[1]
DAY = 86_400.0
_LINE = re.compile(r"backfilled ([0-9,]+) lines in ([0-9.]+)s with (\d+) process")


def history(work: Path, customers: int, *, seed: int = 1) -> tuple[Path, int]:
    """A year of `customers` customers, ending two days before today."""
    start = datetime.fromtimestamp((time.time() // DAY - 367) * DAY, UTC)
    path = work / f"backfill-{customers}.jsonl"
    events, _ = write_jsonl(
        Simulator(SimulationConfig(customers=customers, days=365, seed=seed, start=start)), path
    )
    return path, events


def run_once(path: Path, processes: int) -> dict[str, Any]:
    """One `vipstream backfill --dry-run`: its own figure, wall and CPU seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIPSTREAM_")}
    env["PYTHONPATH"] = str(ROOT)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    command = ["backfill", "--dry-run", "--quiet", "--processes", str(processes), str(path)]
    done = subprocess.run(
        [sys.executable, "-m", "agents.cli", *command],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    found = _LINE.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"backfill --processes {processes} failed:\n{done.stderr}")
    lines, seconds = int(found[1].replace(",", "")), float(found[2])
    return {
        "processes": int(found[3]),
        "events_per_second": lines / seconds,
        "seconds": seconds,
        "wall_seconds": wall,
        "cpu_seconds": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    }


def measure(
    work: Path, *, customers: int = 2000, repeats: int = 5, processes: int = 2
) -> dict[str, Any]:
    """Alternated runs of one process and `processes`; medians and the pairs' ratios."""
    path, events = history(work, customers)
    one: list[dict[str, Any]] = []
    many: list[dict[str, Any]] = []
    for _ in range(repeats):
        one.append(run_once(path, 1))
        many.append(run_once(path, processes))
    ratios = [
        m["events_per_second"] / o["events_per_second"] for o, m in zip(one, many, strict=True)
    ]
    return {
        "customers": customers,
        "events": events,
        "processes": processes,
        "load_average": os.getloadavg(),
        "one": one,
        "many": many,
        "one_median": statistics.median(r["events_per_second"] for r in one),
        "many_median": statistics.median(r["events_per_second"] for r in many),
        "ratio_median": statistics.median(ratios),
        "ratios": ratios,
        "cpu_one_median": statistics.median(r["cpu_seconds"] for r in one),
        "cpu_many_median": statistics.median(r["cpu_seconds"] for r in many),
    }


def describe(figures: dict[str, Any]) -> str:
    f = figures
    return (
        f"backfill --dry-run, a year of {f['customers']:,} customers ({f['events']:,} events), "
        f"{len(f['one'])} alternated pairs: 1 process {f['one_median']:,.0f} events/s, "
        f"{f['processes']} processes {f['many_median']:,.0f} events/s (medians); "
        f"ratio {f['ratio_median']:.2f}x (median of the pairs, range "
        f"{min(f['ratios']):.2f}-{max(f['ratios']):.2f}); CPU seconds {f['cpu_one_median']:.1f} "
        f"vs {f['cpu_many_median']:.1f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vipstream-backfill-bench-") as tmp:
        figures = measure(
            Path(tmp), customers=args.customers, repeats=args.repeats, processes=args.processes
        )
    print(describe(figures))
    out = ROOT / "bench" / "results" / f"backfill-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
