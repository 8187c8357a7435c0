"""The dashboard of a running system, rendered by headless Chromium.

Two workers on the embedded broker tier a small replayed history; Chromium loads
/dashboard as a browser would, and the DOM it prints shows the tiers /tiers reports, a
histogram with the cut lines, and counts of emitted events equal to the events on the
output topics. The other worker, which emitted only its own partitions' share of those
events, serves the same figures.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import urllib.error
import urllib.request
import zlib
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.dom import Element, parse
from tests.integration.conftest import WorkerFactory
from tests.integration.kafka import read_topic
from tests.support import Worker, cli, simulate_history, wait_for

pytestmark = pytest.mark.integration

CHROMIUM = "chromium"  # Debian's package, installed by scripts/system-deps
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)
JUDGED = ("vip", "gold", "silver", "bronze")
#: the pyramid's fills (agents/worker/dashboard.py TIER_COLOURS), looked for in the screenshot
FILLS = {"vip": (0x5B, 0x21, 0xB6), "gold": (0xC9, 0x9A, 0x06), "bronze": (0x9A, 0x5B, 0x2E)}


def chromium(args: list[str], profile: Path, timeout: float = 60) -> str:
    """Run headless Chromium in its own process group; its stdout. On a timeout the whole
    group (renderer and GPU helpers included) is killed."""
    process = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"chromium timed out after {timeout}s:\n{err[-3000:]}") from None
    assert process.returncode == 0, f"chromium exited {process.returncode}:\n{err[-3000:]}"
    return out


def settle(workers: list[Worker], sent: int) -> dict[str, Any]:
    """Every event consumed and the last day tiered everywhere, unchanged for ~3 s."""
    wait_for(
        lambda: sum(w.metric("vipstream_events_consumed_total") for w in workers) >= sent,
        timeout=90,
        what="every event consumed",
    )
    last: list[Any] = [None, 0]

    def stable() -> dict[str, Any] | None:
        status, body = workers[0].get("/tiers")
        if status != 200 or body["counts_as_of"] != body["as_of"]:
            return None
        if not any(body["counts"][t] for t in JUDGED):
            return None
        if body != last[0]:
            last[0], last[1] = body, 0
            return None
        last[1] += 1
        return body if last[1] >= 10 else None

    report: dict[str, Any] = wait_for(stable, timeout=90, what="the last day tiered", interval=0.3)
    return report


def emitted_on_topics(env: dict[str, str]) -> dict[str, Any]:
    """What the system emitted, read back from the output topics (distinct event ids)."""
    tier_changes = {e["event_id"] for e in read_topic(env, "tier_changes", idle=2.0)}
    spikes = {e["event_id"] for e in read_topic(env, "basic_question_spikes", idle=2.0)}
    tasks = {e["event_id"]: e["kind"] for e in read_topic(env, "care_tasks", idle=2.0)}
    return {
        "tier_changes": len(tier_changes),
        "spikes": len(spikes),
        "care_tasks": dict(Counter(tasks.values())),
    }


def count(dom: Element, element_id: str) -> int:
    return int(dom.by_id(element_id).attrs["data-count"])


def read_dashboard(dom: Element) -> dict[str, Any]:
    """The figures a reader sees, taken from the rendered DOM."""
    return {
        "tiers": {
            e.attrs["data-tier"]: int(e.attrs["data-count"]) for e in dom.find_all(class_="tier")
        },
        "tier_changes": count(dom, "count-tier-changes"),
        "spikes": count(dom, "count-spikes"),
        "care_tasks": {
            e.attrs["data-kind"]: int(e.attrs["data-count"])
            for e in dom.find_all("tr", class_="care")
            if int(e.attrs["data-count"])
        },
    }


def test_the_dashboard_shows_the_running_system(
    env: dict[str, str], make_worker: WorkerFactory, tmp_path: Path
) -> None:
    workers = [make_worker(name).start() for name in ("w1", "w2")]
    first, second = (w.wait_healthy() for w in workers)
    with pytest.raises(urllib.error.HTTPError) as waiting:
        urllib.request.urlopen(first.url + "/dashboard", timeout=5)
    assert waiting.value.code == 503, "before any day is closed the page says it is waiting"
    assert waiting.value.headers["Content-Type"] == "text/html; charset=utf-8"
    assert 'data-state="waiting"' in waiting.value.read().decode()

    history = simulate_history(
        env,
        tmp_path / "history.jsonl",
        customers=150,
        days=60,
        seed=51,
        start="2026-01-05T00:00:00Z",
    )
    replay = cli(["replay", "--quiet", str(history)], env)
    sent = int(replay.stderr.split("replayed ")[1].split(" ")[0].replace(",", ""))
    report = settle(workers, sent)
    assert all(w.metric("vipstream_events_applied_total") > 0 for w in workers)

    # -- what Chromium renders -----------------------------------------------------------
    url = first.url + "/dashboard"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    dom = parse(chromium(["--dump-dom", url], tmp_path / "chromium-dom"))
    page = dom.by_id("dashboard")
    assert page.attrs["data-state"] == "ready"
    shown = read_dashboard(dom)
    assert shown["tiers"] == report["counts"]
    assert sum(shown["tiers"][t] for t in JUDGED) == report["population"] > 0
    assert int(page.attrs["data-customers"]) == sum(report["counts"].values())
    assert int(page.attrs["data-population"]) == report["population"]
    closed = datetime.fromisoformat(report["as_of"].replace("Z", "+00:00")) - timedelta(days=1)
    assert dom.by_id("as-of").text == closed.strftime("%Y-%m-%d")  # as_of is the day's end

    bars = [e for e in dom.find_all("rect", class_="bar") if int(e.attrs["data-count"])]
    assert len(bars) >= 5, "a histogram, not a single block"
    assert sum(int(e.attrs["data-count"]) for e in bars) == report["population"]
    assert sum(h["count"] for h in report["histogram"]) == report["population"]
    cuts = {e.attrs["data-tier"]: float(e.attrs["data-score"]) for e in dom.find_all(class_="cut")}
    assert cuts == {
        t: pytest.approx(report["cuts"][t]["entry_score"], rel=1e-5)
        for t in ("vip", "gold", "silver")
    }

    # the counts are whole-system: exactly the events on the output topics, and the
    # same on the other worker, which emitted only its own partitions' share of them
    emitted = emitted_on_topics(env)
    assert shown["tier_changes"] > 0
    assert {k: shown[k] for k in ("tier_changes", "spikes", "care_tasks")} == emitted

    def second_page() -> dict[str, Any] | None:
        status, body = second.get("/dashboard")  # ready within a check interval of the first
        return read_dashboard(parse(body)) if status == 200 else None

    assert wait_for(second_page, timeout=10, what="the second worker's dashboard") == shown
    local = [w.metric("vipstream_tier_changes_total") for w in workers]
    assert all(0 < n < shown["tier_changes"] for n in local), local

    # -- what a person sees ----------------------------------------------------------------
    png = tmp_path / "dashboard.png"
    chromium([f"--screenshot={png}", "--window-size=1200,900", url], tmp_path / "chromium-png")
    width, height, pixels = decode_png(png.read_bytes())
    assert (width, height) == (1200, 900)
    assert png.stat().st_size > 20_000
    colours = Counter(pixels)
    assert len(colours) > 50, "more than a blank or single-colour page"
    assert colours.most_common(1)[0][1] < 0.9 * width * height
    for tier, fill in FILLS.items():
        assert colours[fill] > 500, f"the {tier} band of the pyramid is not drawn"


def decode_png(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and RGB pixels of an 8-bit RGB or RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, idat = 8, b""
    width = height = channels = 0
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        chunk = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert (depth, interlace) == (8, 0), (depth, interlace)
            assert colour in (2, 6), colour  # RGB or RGBA
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        position += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            upper_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - upper_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upper_left)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else upper_left
                line[i] = (line[i] + predictor) & 0xFF
        pixels.extend((line[i], line[i + 1], line[i + 2]) for i in range(0, stride, channels))
        previous = line
    return width, height, pixels


def test_a_customer_page_shows_value_by_month_p_alive_and_what_was_emitted(
    env: dict[str, str], make_worker: WorkerFactory, tmp_path: Path
) -> None:
    """The dashboard's search box leads to /dashboard/customers/{id}, which either worker
    serves (forwarded to the owner); Chromium renders the customer's revenue and service
    cost by month, P(alive) over time under the fitted model, and the tier changes, tasks
    and spikes emitted for it, the same as on the output topics."""
    small_fit = {
        "VIPSTREAM_PREDICTION__MIN_CUSTOMERS": "50",
        "VIPSTREAM_PREDICTION__MIN_REPEAT_BUYERS": "10",
    }
    workers = [make_worker(name, **small_fit).start() for name in ("w1", "w2")]
    first, second = (w.wait_healthy() for w in workers)
    history = simulate_history(
        env,
        tmp_path / "history.jsonl",
        customers=150,
        days=90,
        seed=52,
        start="2026-01-05T00:00:00Z",
    )
    replay = cli(["replay", "--quiet", str(history)], env)
    settle(workers, int(replay.stderr.split("replayed ")[1].split(" ")[0].replace(",", "")))
    assert first.get("/tiers")[1]["model"] is not None, "the population model is fitted"

    emitted: dict[str, list[dict[str, Any]]] = {}
    for topic in ("tier_changes", "care_tasks", "basic_question_spikes"):
        for event in read_topic(env, topic, idle=2.0):
            emitted.setdefault(event["customer_id"], []).append(event)
    customer = max(
        sorted(emitted), key=lambda c: sum(e["event_type"] == "tier_change" for e in emitted[c])
    )
    events = {e["event_id"]: e for e in emitted[customer]}.values()  # distinct

    search = urllib.request.Request(f"{second.url}/dashboard/customers?id={customer}")
    opener = urllib.request.build_opener(_NoRedirect())
    with pytest.raises(urllib.error.HTTPError) as redirected:
        opener.open(search, timeout=5)
    assert redirected.value.code == 302
    assert redirected.value.headers["Location"] == f"/dashboard/customers/{customer}"

    status, figures = first.get(f"/customers/{customer}")
    assert status == 200
    for worker in (first, second):
        url = f"{worker.url}/dashboard/customers/{customer}"
        dom = parse(chromium(["--dump-dom", url], tmp_path / f"chromium-{worker.web_port}"))
        page = dom.by_id("customer")
        assert page.attrs["data-state"] == "ready"
        assert page.attrs["data-customer"] == customer
        assert page.attrs["data-tier"] == figures["tier"]
        assert float(dom.by_id("card-p-alive").attrs["data-value"]) == pytest.approx(
            figures["p_alive"], rel=1e-4
        )
        months = dom.find_all("g", class_="month")
        assert [m.attrs["data-month"] for m in months] == sorted(
            {m.attrs["data-month"] for m in months}
        )
        # 90 days of history: every day bucket is kept, so the months add up to the lifetime
        revenue = sum(float(m.attrs["data-revenue"]) for m in months)
        cost = sum(float(m.attrs["data-cost"]) for m in months)
        assert revenue == pytest.approx(figures["lifetime_revenue"], abs=0.01 * len(months))
        assert cost == pytest.approx(figures["lifetime_service_cost"], abs=0.01 * len(months))
        alive = [float(c.attrs["data-p-alive"]) for c in dom.find_all("circle", class_="alive")]
        assert len(alive) >= 5
        assert all(0.0 <= p <= 1.0 for p in alive)
        assert alive[-1] == pytest.approx(figures["p_alive"], abs=1e-4)
        shown = [
            (e.attrs["data-kind"], e.attrs["data-day"]) for e in dom.find_all("tr", class_="entry")
        ]
        expected = sorted(
            (
                {"tier_change": "tier", "care_task": "task", "basic_question_spike": "spike"}[
                    e["event_type"]
                ],
                (
                    datetime.fromisoformat(e["as_of"].replace("Z", "+00:00")) - timedelta(days=1)
                ).strftime("%Y-%m-%d"),
            )
            for e in events
        )
        assert sorted(shown) == expected[-24:] if len(expected) > 24 else sorted(shown) == expected
    status, unknown = first.get("/dashboard/customers/nobody-at-all")
    assert status == 404
    assert 'data-state="unknown"' in unknown


def _day_before(as_of: str) -> str:
    """The closed day an output is as of (its as_of is that day's end)."""
    moment = datetime.fromisoformat(as_of.replace("Z", "+00:00")) - timedelta(days=1)
    return moment.strftime("%Y-%m-%d")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
