"""`vipstream demo` as a newcomer runs it: a live feed within a minute, a clean Ctrl-C."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.e2e


def our_processes() -> set[int]:
    """Brokers and workers currently running (by command line)."""
    out = subprocess.run(
        ["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True
    ).stdout
    found = set()
    for line in out.splitlines():
        pid, _, args = line.strip().partition(" ")
        if "tansu" in args or "agents.cli worker" in args:
            found.add(int(pid))
    return found


def test_demo_shows_a_live_feed_and_stops_cleanly() -> None:
    before = our_processes()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIPSTREAM_")}
    demo = subprocess.Popen(
        [sys.executable, "-m", "agents.cli", "demo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert demo.stdout is not None
    lines: list[str] = []
    feed_seen = status_seen = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and not (feed_seen and status_seen):
            ready, _, _ = select.select([demo.stdout], [], [], 1.0)
            if not ready:
                assert demo.poll() is None, "\n".join(lines)
                continue
            line = demo.stdout.readline().decode(errors="replace").rstrip()
            lines.append(line)
            # an output event from the system: dead letters first, tiers and tasks later
            feed_seen |= any(tag in line for tag in ("DEAD ", "TIER ", "TASK ", "SPIKE "))
            # a status line that counts what the worker consumed (not a line of zeros)
            status_seen |= "status: consumed" in line and "status: consumed 0 " not in line
        assert feed_seen, "no output event in the feed within 60 s:\n" + "\n".join(lines)
        assert status_seen, "no status line counting events within 60 s:\n" + "\n".join(lines)
        during = our_processes() - before
        assert len(during) >= 2, "expected a broker and a worker"
    finally:
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=45)
    assert demo.returncode == 0, rest.decode(errors="replace")
    assert "stopped." in rest.decode()
    time.sleep(0.5)
    assert our_processes() - before == set(), "the demo left processes behind"
