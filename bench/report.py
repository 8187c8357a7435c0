"""The table `make bench` prints: ratios first, absolute figures beside them."""

from __future__ import annotations

from typing import Any

MIB = 1024 * 1024
MILLION = 1_000_000


def print_table(f: dict[str, Any]) -> None:
    rows: list[tuple[str, str, str]] = []
    _throughput(f, rows)
    _on_apache_kafka(f, rows)
    _latency(f, rows)
    _day_close(f, rows)
    _state(f, rows)
    _recovery(f, rows)
    _others(f, rows)
    print(f"\n{_title(f)}\n")
    width = max(len(r[0]) for r in rows) if rows else 0
    middle = max(len(r[1]) for r in rows) if rows else 0
    for name, figure, ratio in rows:
        print(f"{name:<{width}}  {figure:<{middle}}  {ratio}".rstrip())
    _profile(f)


def _profile(f: dict[str, Any], shown: int = 25) -> None:
    """With --profile: the functions the worker of (b) spent its samples in."""
    profile = (f.get("worker") or {}).get("profile")
    if not profile or not profile["samples"]:
        return
    print(f"\nworker of (b), py-spy: {profile['samples']:,} samples; share of them")
    print("  on the stack (inclusive)                              at the top (own)")
    inclusive, own = profile["inclusive"][:shown], profile["own"][:shown]
    for i in range(max(len(inclusive), len(own))):
        left = f"{inclusive[i][1]:6.1%}  {inclusive[i][0][:46]}" if i < len(inclusive) else ""
        right = f"{own[i][1]:6.1%}  {own[i][0][:50]}" if i < len(own) else ""
        print(f"  {left:<54}{right}".rstrip())


def _title(f: dict[str, Any]) -> str:
    stream = f.get("stream")
    machine = f["machine"]
    load = machine.get("load_average_at_start")
    shared = f"{machine['cpus']} CPUs shared by the broker, the workers and the harness" + (
        f" (load average {load[0]:.1f} at the start)" if load else ""
    )
    if not stream:
        return f"vipstream bench ({shared})"
    return (
        f"vipstream bench: {stream['events']:,} events ({stream['days']:g} event days) of "
        f"{stream['customers']:,} customers, 8 partitions; {shared}"
    )


def _rate(value: float) -> str:
    return f"{value:,.0f} events/s"


def _throughput(f: dict[str, Any], rows: list[tuple[str, str, str]]) -> None:
    floor = f.get("floor", {}).get("events_per_second")
    one = f.get("worker")
    two = f.get("two_workers")
    if floor:
        rows.append(("(a) floor: bare Faust agent, JSON decode only", _rate(floor), "1.00 (floor)"))
    _aggregation(f.get("aggregation"), floor, "floor", rows)
    if one:
        rate, tiered = one["events_per_second"], one["events_per_second_tiered"]
        rows.append(("(b) pipeline, one worker: consumed", _rate(rate), _x(rate, floor, "floor")))
        rows.append(
            (
                "(b) pipeline, one worker: consumed and tiered",
                _rate(tiered),
                _x(tiered, floor, "floor"),
            )
        )
    if two:
        rate = two["events_per_second"]
        base = one["events_per_second"] if one else None
        ratio = _x(rate, base, "one worker")
        if floor:
            ratio += f" ({rate / floor:.2f} x floor)"
        rows.append(("(f) pipeline, two workers in one group: consumed", _rate(rate), ratio))
    floor_cpu = f.get("floor", {}).get("cpu_microseconds_per_event")
    for name, run in (
        ("floor", f.get("floor")),
        ("aggregation only", f.get("aggregation")),
        ("one worker", one),
        ("two workers", two),
    ):
        if run and "cpus_used" in run:
            per_event = run["cpu_microseconds_per_event"]
            broker = run.get("broker_cpus_used")
            rows.append(
                (
                    f"    CPU per event, {name} (CPUs it got)",
                    f"{per_event:,.0f} us ({run['cpus_used']:.2f} CPUs)",
                    (_x(per_event, floor_cpu, "floor") if name != "floor" else "")
                    + (f"; broker meanwhile {broker:.2f} CPUs" if broker is not None else ""),
                )
            )
    if one and one.get("applied"):
        per_event = one["changelog_writes"] / one["applied"]
        rows.append(("(b) changelog writes per applied event", f"{per_event:.3f}", ""))


def _aggregation(
    run: dict[str, Any] | None, floor: float | None, what: str, rows: list[tuple[str, str, str]]
) -> None:
    """(a') vipstream's per-event path alone (bench/aggregation_app.py)."""
    if not run:
        return
    rate = run["events_per_second"]
    rows.append(
        (
            "(a') vipstream aggregation only: per-event path, no close",
            _rate(rate),
            _x(rate, floor, what) + f"; {run.get('state_writes', 0):,} state writes",
        )
    )


def _peers(kafka: dict[str, Any], floor: float | None, rows: list[tuple[str, str, str]]) -> None:
    """Kafka Streams and Quix Streams on the same events and node (bench/peers.py)."""
    peers = kafka.get("peers") or {}
    pipeline = (kafka.get("worker") or {}).get("events_per_second")
    aggregation = (kafka.get("aggregation") or {}).get("events_per_second")
    for key, label in (
        ("kafka_streams_at_least_once", "Kafka Streams, at least once"),
        ("kafka_streams_exactly_once_v2", "Kafka Streams, exactly_once_v2"),
        ("quix_at_least_once", "Quix Streams, at least once"),
        ("quix_exactly_once", "Quix Streams, exactly once"),
    ):
        found = peers.get(key)
        if not found:
            continue
        rate = found["events_per_second"]
        ratio = _x(rate, floor, "Kafka floor")
        if pipeline:
            ratio += f"; vipstream pipeline = {pipeline / rate:.2f} x it"
        if aggregation:
            ratio += f", aggregation only = {aggregation / rate:.2f} x it"
        rows.append((f"(p) peer on Apache Kafka: {label}, per-customer sum", _rate(rate), ratio))
    for key in ("kafka_streams_error", "quix_error"):
        if peers.get(key):
            rows.append((f"(p) {key.replace('_', ' ')}", "not measured", peers[key][:120]))


def _on_apache_kafka(f: dict[str, Any], rows: list[tuple[str, str, str]]) -> None:
    """(a) and (b) on Apache Kafka, each beside the same figure on the embedded broker."""
    kafka = f.get("kafka")
    if not kafka:
        return
    floor = kafka.get("floor", {}).get("events_per_second")
    embedded_floor = f.get("floor", {}).get("events_per_second")
    if floor:
        rows.append(
            (
                "(a) floor on Apache Kafka",
                _rate(floor),
                _x(floor, embedded_floor, "embedded floor"),
            )
        )
    _aggregation(kafka.get("aggregation"), floor, "Kafka floor", rows)
    _peers(kafka, floor, rows)
    one = kafka.get("worker")
    if not one:
        return
    embedded = f.get("worker") or {}
    for label, key in (
        ("consumed", "events_per_second"),
        ("consumed and tiered", "events_per_second_tiered"),
    ):
        rate = one[key]
        ratio = _x(rate, floor, "Kafka floor")
        if embedded.get(key):
            ratio += f"; {rate / embedded[key]:.2f} x embedded pipeline"
        rows.append((f"(b) pipeline on Apache Kafka, one worker: {label}", _rate(rate), ratio))
    once = kafka.get("exactly_once")
    if once:
        for label, key in (
            ("consumed", "events_per_second"),
            ("consumed and tiered", "events_per_second_tiered"),
        ):
            rate = once[key]
            rows.append(
                (
                    f"(b) exactly once on Apache Kafka, one worker: {label}",
                    _rate(rate),
                    _x(rate, one[key], "at least once") + f"; {_x(rate, floor, 'Kafka floor')}",
                )
            )
    if "cpus_used" in one:
        broker = one.get("broker_cpus_used")
        rows.append(
            (
                "    CPU per event, one worker on Apache Kafka (CPUs it got)",
                f"{one['cpu_microseconds_per_event']:,.0f} us ({one['cpus_used']:.2f} CPUs)",
                f"broker meanwhile {broker:.2f} CPUs" if broker is not None else "",
            )
        )


def _latency(f: dict[str, Any], rows: list[tuple[str, str, str]]) -> None:
    lat = f.get("latency")
    if not lat:
        return
    for run in (lat, lat.get("sustainable")):
        if not run:
            continue
        kept_up = run["drain_seconds"] <= 2.0 + 0.1 * run["produce_seconds"]
        note = (
            f"kept up: consumed {run['events']:,} events in "
            f"{run['produce_seconds'] + run['drain_seconds']:,.1f} s"
            if kept_up
            else f"fell behind, a queue grew: {run['events']:,} events sent in "
            f"{run['produce_seconds']:,.0f} s, consumed {run['consumed_per_second']:,.0f}/s"
        )
        rows.append(
            (
                f"(c) latency, event -> ticket priority, at {run['rate']:,.0f} events/s",
                f"p50 {_s(run['p50_seconds'])}, p99 {_s(run['p99_seconds'])}",
                f"{note}; {run['matched']:,} of {run['tickets']:,} tickets",
            )
        )
    rows.append(
        (
            f"(c) input delay at {lat['rate']:,.0f} events/s (/metrics histogram)",
            f"p50 <= {_s(lat['input_delay_p50_seconds'])}, "
            f"p99 <= {_s(lat['input_delay_p99_seconds'])}",
            "processing time - input timestamp",
        )
    )
    if lat.get("loop_stall_p99_seconds") is not None:
        rows.append(
            (
                f"(c) event loop held, at {lat['rate']:,.0f} events/s (10 ms timer)",
                f"p99 <= {_s(lat['loop_stall_p99_seconds'])}, "
                f"longest <= {_s(lat['loop_stall_longest_at_most_seconds'])}",
                f"{lat['loop_stalls_over_20ms']:,.0f} stalls > 20 ms, "
                f"{lat['loop_stalls_over_100ms']:,.0f} > 100 ms (target: none > ~20 ms)",
            )
        )
    _full_collections("(c)", lat, rows)
    _stall_spots("(c)", lat.get("stall_spots"), rows)


def _full_collections(
    section: str, found: dict[str, Any], rows: list[tuple[str, str, str]]
) -> None:
    if found.get("gc_full_collections") is None:
        return
    rows.append(
        (
            f"{section} Python full garbage collections meanwhile",
            f"{found['gc_full_collections']:,.0f}, longest <= "
            f"{_s(found['gc_full_longest_at_most_seconds'])}",
            "each scans every live object (decoded states included)",
        )
    )


def _stall_spots(
    section: str, found: dict[str, Any] | None, rows: list[tuple[str, str, str]]
) -> None:
    """Where the loop was held during a section (the worker's stall log, 10 ms samples)."""
    if not found or not found["stalls"]:
        return
    rows.append(
        (
            f"{section} stalls >= 50 ms (worker log): where",
            f"{found['stalls']:,} stalls, longest {_s(found['longest_seconds'])}",
            f"{found['samples']:,} samples of 10 ms",
        )
    )
    for spot, count in found["spots"].items():
        rows.append((f"    {spot[:70]}", f"{count:,} samples", ""))


def _day_close(f: dict[str, Any], rows: list[tuple[str, str, str]]) -> None:
    close = f.get("day_close")
    if not close or close["max_seconds"] is None:
        return
    outputs = [d["outputs"] for d in close["days"]]
    rows.append(
        (
            "(g) day closed by one event -> its last output",
            f"p50 {_s(close['p50_seconds'])}, max {_s(close['max_seconds'])}",
            f"{len(outputs)} closes, {min(outputs):,}-{max(outputs):,} outputs each; "
            "the contract allows 30 s",
        )
    )
    if close.get("loop_stall_longest_at_most_seconds") is not None:
        rows.append(
            (
                "(g) event loop held during the closes",
                f"longest <= {_s(close['loop_stall_longest_at_most_seconds'])}",
                f"{close['loop_stalls_over_100ms']:,.0f} stalls > 100 ms",
            )
        )
    _full_collections("(g)", close, rows)
    _stall_spots("(g)", close.get("stall_spots"), rows)


def _state(f: dict[str, Any], rows: list[tuple[str, str, str]]) -> None:
    size = f.get("state_size")
    if size:
        rows.append(
            (
                f"(d) state per customer, encoded ({size['window_days']}-day window)",
                f"mean {size['mean_bytes']:,.0f} B, p99 {size['p99_bytes']:,} B",
                f"{size['customers']:,} customers, a year each",
            )
        )
    one = f.get("worker")
    if one and one.get("customers_held"):
        per = one["rss_bytes"] / one["customers_held"]
        rows.append(
            (
                "(d) worker RSS / customers held, after (b)",
                f"{per / 1024:,.1f} KiB",
                f"{one['rss_bytes'] / MIB:,.0f} MiB for {one['customers_held']:,.0f} customers"
                f" -> {per * MILLION / 1024**3:,.1f} GiB per 1M",
            )
        )
    marginal = f.get("rss_per_customer")
    if marginal:
        rows.append(
            (
                "(d) worker RSS per additional customer",
                f"{marginal['bytes'] / 1024:,.1f} KiB",
                f"{marginal['million_bytes'] / 1024**3:,.1f} GiB for 1M customers "
                f"(slope between {marginal['between'][0]:,.0f} and {marginal['between'][1]:,.0f})",
            )
        )


def _recovery(f: dict[str, Any], rows: list[tuple[str, str, str]]) -> None:
    rec = f.get("recovery")
    if not rec:
        return
    measured = rec["customers"]
    how = "measured" if measured == MILLION else f"extrapolated from {measured:,}"
    rows.append((f"(e) restart to serving, 1M customers ({how}):", "", ""))
    base = rec["empty_worker"]["seconds"]
    names = {
        "empty_worker": "an empty worker (100 customers; baseline)",
        "changelog_to_memory_scan": "changelog -> memory, ledgers from every state",
        "changelog_to_memory": "changelog -> memory, ledgers from checkpoints",
        "rocksdb_empty_directory": "RocksDB, empty directory (full rebuild)",
        "rocksdb_restart": "RocksDB, restart on the same directory",
    }
    for key, name in names.items():
        if key not in rec:
            continue
        run, seconds = rec[key], rec["million"][key]
        read = run.get("changelog_read_seconds")
        rate = run["records_read"] / read if run["records_read"] and read else None
        rows.append(
            (
                f"    {name}",
                f"{seconds:,.0f} s",
                f"{_x(run['seconds'], base, 'an empty worker')} at {measured:,} "
                f"({run['seconds']:,.1f} s); {run['records_read']:,.0f} records read"
                + (f", {rate:,.0f} records/s" if rate else "")
                + (
                    f", {run['records_read_in_bulk']:,.0f} of them in bulk"
                    if run.get("records_read_in_bulk") is not None
                    else ""
                ),
            )
        )
    failover = rec.get("standby_failover")
    if failover:
        rows.append(
            (
                f"    standby failover at {measured:,} (measured)",
                f"{failover['seconds']:,.1f} s",
                f"kill -9 to the survivor serving every partition, the "
                f"{failover['session_timeout_seconds']:.0f} s session timeout included "
                f"({failover['after_session_timeout_seconds']:.1f} s after it); "
                f"{failover['records_read_after_kill']:,.0f} changelog records read after "
                f"the kill; two workers with standbys: "
                f"{failover['two_workers_rss_bytes'] / 1024**2:,.0f} MiB RSS",
            )
        )


def _others(f: dict[str, Any], rows: list[tuple[str, str, str]]) -> None:
    sim = f.get("simulator_to_file")
    if sim:
        rows.append(
            (
                "simulator to a file",
                _rate(sim["events_per_second"]),
                f"{sim['events_per_cpu_second']:,.0f} per CPU second; {sim['events']:,} events",
            )
        )
    r = f.get("retier")
    if r:
        rows.append(
            (
                f"re-tier {r['customers']:,} customers after the distribution moved",
                f"{r['engine_seconds']:.2f} s vs {r['full_pass_seconds']:.2f} s",
                f"{r['engine_over_full_pass']:.2f} x a full pass; {r['candidates']:,} re-checked",
            )
        )
    p = f.get("predictive")
    if p:
        rows.append(
            (
                f"CDNOW holdout revenue bought by the top {p['top_share']:.0%}",
                f"{p['predicted_clv_capture']:.1%} by predicted CLV",
                f"{p['historic_revenue_capture']:.1%} by past revenue; "
                f"{p['predicted_clv_capture'] / p['historic_revenue_capture']:.3f} x; "
                f"fit {p['fit_seconds']:.2f} s for {p['customers']:,} customers",
            )
        )
    churn = (p or {}).get("churn")
    if churn:
        for rule in ("stages", "model"):
            c = churn[rule]
            rows.append(
                (
                    f"churn tasks a month, rule {rule} ({churn['customers']:,} customers, a year)",
                    f"{c['mean_monthly_share']:.2%} of customers",
                    f"{c['churners_tasked']:.0%} of churners called; "
                    f"{c['tasked_after_churning']:.0%} of calls to churners; "
                    f"{c['bought_again_within_90_days']:.0%} bought again within 90 days",
                )
            )
    if "wall_seconds" in f:
        minutes, seconds = divmod(int(f["wall_seconds"]), 60)
        rows.append(("wall time of this run", f"{minutes}m{seconds:02d}s", ""))


def _x(value: float, base: float | None, what: str) -> str:
    return f"{value / base:.2f} x {what}" if base else ""


def _s(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if value == float("inf") else f"{value:.3g} s"
