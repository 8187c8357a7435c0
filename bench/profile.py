"""`make bench BENCH_ARGS=--profile`: py-spy samples the worker of (b) while it consumes,
and the benchmark reports where its time goes (inclusive and own share per function).

py-spy reads another process's memory (ptrace): it needs root or
`kernel.yama.ptrace_scope = 0`. Without it, the benchmark says so and goes on unprofiled.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def py_spy() -> str | None:
    """The py-spy executable beside this interpreter (the dev extra installs it), or on PATH."""
    here = Path(sys.executable).with_name("py-spy")
    return str(here) if here.exists() else shutil.which("py-spy")


@contextmanager
def sampling(pid: int, out: Path, *, rate: int = 100) -> Iterator[Path | None]:
    """Sample `pid` (its Python stacks, without pausing it) into `out` (py-spy's raw
    format: one `frame;frame;... count` line per distinct stack) until the block ends.
    Yields None when py-spy is missing or may not attach."""
    exe = py_spy()
    if exe is None:
        print("profile: py-spy is not installed; not profiled", flush=True)
        yield None
        return
    log = out.with_suffix(".log")
    with log.open("wb") as errors:
        process = subprocess.Popen(
            [
                *(exe, "record", "--pid", str(pid), "--rate", str(rate), "--nonblocking"),
                *("--format", "raw", "--output", str(out)),
            ],
            stdout=errors,
            stderr=subprocess.STDOUT,
        )
        try:
            yield out
        finally:
            process.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
    if not out.exists():
        print(f"profile: py-spy wrote nothing ({log.read_text(errors='replace')[-300:]})")


def summarize(raw: Path, top: int = 30) -> dict[str, Any]:
    """Shares of the samples per function: `inclusive` (on the stack: the function and
    what it calls) and `own` (at the top of the stack), the largest first. A function is
    named `name (package/file)`, lines merged, and counted once per sample however deep it
    recurses."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [_function(frame) for frame in stack.split(";")]
        for name in set(frames):
            inclusive[name] += samples
        own[frames[-1]] += samples
    if not total:
        return {"samples": 0, "inclusive": [], "own": []}
    return {
        "samples": total,
        "inclusive": [[name, n / total] for name, n in inclusive.most_common(top)],
        "own": [[name, n / total] for name, n in own.most_common(top)],
    }


def _function(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    parts = Path(match["file"]).parts
    ours = [i for i, part in enumerate(parts) if part in _PACKAGES]
    # the project's files from the package on (agents/engine/events.py), others by
    # their last two parts (a package's __init__.py, not a bare one)
    shown = parts[ours[-1] :] if ours else parts[-2:]
    return f"{match['name']} ({'/'.join(shown)})"


_PACKAGES = {"agents", "streams", "schemas", "bench"}
