"""The `vipstream` command (CONTRACT.md section 3)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from agents.settings import ConfigError, Settings, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        code: int = args.run(args)
        return code
    except ConfigError as exc:
        print(f"vipstream: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:  # noqa: PLR0915 - one flat list of commands
    parser = argparse.ArgumentParser(
        prog="vipstream",
        description="Streaming customer-value engine for contact centres. "
        "Kafka commands take the broker from VIPSTREAM_BROKER (default kafka://127.0.0.1:9092); "
        "configuration from the TOML file in VIPSTREAM_CONFIG and VIPSTREAM_* variables.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="embedded broker + worker + simulator, with a live feed")
    p.add_argument("--customers", type=int, default=400)
    p.add_argument("--days", type=float, default=365.0, help="history to simulate up to now")
    p.add_argument(
        "--days-per-second",
        type=float,
        default=3.0,
        help="simulated days per wall-clock second while catching up to now",
    )
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(run=_demo)

    p = sub.add_parser(
        "broker", help="run a local broker: the embedded one, or Apache Kafka (KRaft)"
    )
    p.add_argument(
        "--engine",
        choices=("embedded", "kafka"),
        default="embedded",
        help="embedded (Tansu, in memory; the default) or kafka (Apache Kafka from its "
        "published jars: needs java and mvn)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9092)
    p.add_argument(
        "--data-dir",
        type=Path,
        help="Apache Kafka's data directory, kept after it stops (default: a temporary one)",
    )
    p.set_defaults(run=_broker)

    p = sub.add_parser("worker", help="run a Faust worker (several share the work)")
    p.add_argument("--web-port", type=int, help="HTTP port (default: web.port, 6066)")
    p.add_argument("--datadir", type=Path, help="table data directory (default: datadir)")
    p.set_defaults(run=_worker)

    p = sub.add_parser("simulate", help="synthetic, seeded events to a JSONL file or the topics")
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--days", type=float, default=365.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start", type=_date, help="event time of day 0 (default: DAYS before now)")
    p.add_argument(
        "--output",
        "-o",
        type=Path,
        help="write JSONL here ('-' for stdout) instead of producing to the topics",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="events per second when producing (0: as fast as possible)",
    )
    p.add_argument("--invalid-share", type=float, default=0.0)
    p.add_argument("--duplicate-share", type=float, default=0.0)
    p.set_defaults(run=_simulate)

    p = sub.add_parser("replay", help="produce JSONL events to the input topics")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(run=_replay)

    p = sub.add_parser(
        "backfill",
        help="compute every customer's state from a JSONL history and seed a new "
        "deployment's state table (before its first worker starts)",
    )
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument(
        "--emit-outputs",
        action="store_true",
        help="also produce the history's tier changes, spikes, care tasks and ticket "
        "priorities to the output topics",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="compute and report, write nothing to Kafka"
    )
    p.add_argument(
        "--processes",
        type=_processes,
        default=1,
        metavar="N|auto",
        help="play the partitions in N processes that exchange their population "
        "summaries (same results; at most one per partition; auto: one per usable CPU). "
        "Default 1",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(run=_backfill)

    p = sub.add_parser(
        "acls", help="print the Kafka ACLs a worker's principal needs, as kafka-acls.sh commands"
    )
    p.add_argument("--principal", help="default: User:<kafka.sasl_username>")
    p.set_defaults(run=_acls)

    p = sub.add_parser(
        "config", help="print the effective settings as JSON (secrets shown as **********)"
    )
    p.set_defaults(run=_config)

    p = sub.add_parser("tail", help="print the events on a topic")
    p.add_argument("topic", help="a topic name, e.g. tier-changes or dead-letters")
    p.add_argument("--from-end", action="store_true", help="only new events")
    p.add_argument("--idle-timeout", type=float, help="exit after this many idle seconds")
    p.add_argument("--max-events", type=int, help="exit after this many events")
    p.set_defaults(run=_tail)

    p = sub.add_parser(
        "export", help="every customer's current tier, read from customer-tiers (no worker)"
    )
    p.add_argument("table", choices=("tiers",), help="what to export")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_export)

    p = sub.add_parser(
        "erase", help="forget customers: state, customer-tiers record and preference removed"
    )
    p.add_argument("customer_ids", nargs="+", metavar="CUSTOMER_ID")
    p.add_argument(
        "--wait",
        type=float,
        default=60.0,
        help="seconds to wait for the workers to confirm (0: do not wait)",
    )
    p.set_defaults(run=_erase)

    p = sub.add_parser("schemas", help="write the JSON Schemas of every event")
    p.add_argument("directory", nargs="?", type=Path, default=Path("."))
    p.set_defaults(run=_schemas)
    return parser


def _date(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _tool_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


# -- commands ------------------------------------------------------------------------------
def _broker(args: argparse.Namespace) -> int:
    from agents.tools.broker import BrokerError, run_foreground

    try:
        if args.engine == "kafka":
            from agents.tools import kafka_broker

            return kafka_broker.run_foreground(args.host, args.port, data_dir=args.data_dir)
        if args.data_dir is not None:
            print("vipstream: --data-dir is for --engine kafka", file=sys.stderr)
            return 2
        return run_foreground(args.host, args.port)
    except BrokerError as exc:
        print(f"vipstream: {exc}", file=sys.stderr)
        return 1


def _worker(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.web_port is not None:
        overrides["web"] = {"port": args.web_port}
    if args.datadir is not None:
        overrides["datadir"] = args.datadir
    settings = load_settings(overrides)
    from agents.worker.process import run_worker

    return run_worker(settings)


def _simulate(args: argparse.Namespace) -> int:
    from agents.tools.simulator import SimulationConfig, Simulator

    settings = load_settings()
    start = args.start or datetime.fromtimestamp(
        datetime.now(UTC).timestamp() - args.days * 86400, UTC
    )
    config = SimulationConfig(
        customers=args.customers,
        days=args.days,
        seed=args.seed,
        start=start,
        currency=settings.ingest.currency,
        invalid_share=args.invalid_share,
        duplicate_share=args.duplicate_share,
    )
    simulator = Simulator(config)
    if args.output is not None:
        from agents.tools.simulate_io import write_jsonl

        count, seconds = write_jsonl(simulator, args.output)
        print(
            f"vipstream: wrote {count:,} events in {seconds:.1f}s "
            f"({count / max(seconds, 1e-9):,.0f} events/s)",
            file=sys.stderr,
        )
        return 0
    from agents.tools.simulate_io import produce

    _tool_logging()
    count = asyncio.run(produce(settings, simulator, rate=args.rate))
    print(f"vipstream: produced {count:,} events to {settings.broker}", file=sys.stderr)
    return 0


def _files_exist(files: list[Path]) -> bool:
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        print(f"vipstream: no such file: {', '.join(missing)}", file=sys.stderr)
    return not missing


def _replay(args: argparse.Namespace) -> int:
    from agents.tools.replay import print_invalid, replay_files

    settings = load_settings()
    if not _files_exist(args.files):
        return 2
    _tool_logging()
    report = asyncio.run(replay_files(settings, args.files, progress=not args.quiet))
    print_invalid(report)
    print(
        f"vipstream: replayed {report.sent:,} events in {report.seconds:.1f}s; "
        f"{len(report.invalid):,} invalid lines",
        file=sys.stderr,
    )
    return 1 if report.invalid else 0


def _processes(text: str) -> int:
    """`--processes`: a count, or 0 for auto."""
    if text == "auto":
        return 0
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or 'auto': {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return count


def _backfill(args: argparse.Namespace) -> int:
    from agents.tools.backfill import BackfillError, backfill, default_processes
    from agents.tools.replay import ReplayReport, print_invalid

    settings = load_settings()
    processes = args.processes or default_processes(settings)
    if not _files_exist(args.files):
        return 2
    _tool_logging()
    try:
        report = asyncio.run(
            backfill(
                settings,
                args.files,
                emit_outputs=args.emit_outputs,
                progress=not args.quiet,
                write=not args.dry_run,
                processes=processes,
            )
        )
    except BackfillError as exc:
        print(f"vipstream: {exc}", file=sys.stderr)
        return 1
    print_invalid(ReplayReport(invalid=report.invalid_lines))
    rate = report.lines / max(report.seconds, 1e-9)
    reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(report.dead_letters.items())) or "none"
    outputs = ", ".join(f"{t} {n:,}" for t, n in sorted(report.outputs.items())) or "none"
    print(
        f"vipstream: backfilled {report.lines:,} lines in {report.seconds:.1f}s "
        f"with {min(processes, settings.kafka.partitions)} process"
        f"{'es' if min(processes, settings.kafka.partitions) > 1 else ''} "
        f"({rate:,.0f} lines/s): {report.applied:,} events applied, "
        f"{report.duplicates:,} duplicates, {len(report.invalid_lines):,} unroutable lines, "
        f"dead letters: {reasons}\n"
        f"vipstream: {report.customers:,} customers, days closed through "
        f"{report.closed_through or 'none'}; outputs "
        f"{'produced' if args.emit_outputs else 'not produced'}: {outputs}\n"
        + (
            "vipstream: dry run, nothing written"
            if args.dry_run
            else f"vipstream: {report.records_written:,} state records written to the changelog"
        ),
        file=sys.stderr,
    )
    return 1 if report.invalid_lines else 0


def _acls(args: argparse.Namespace) -> int:
    from agents.kafka.acls import worker_acls

    settings = load_settings()
    principal = args.principal or f"User:{settings.kafka.sasl_username or 'vipstream'}"
    bootstrap = ",".join(settings.bootstrap_servers)
    for acl in worker_acls(settings):
        print(f"{acl.command(principal, bootstrap)}  # {acl.why}")
    return 0


def _config(args: argparse.Namespace) -> int:
    print(orjson.dumps(load_settings().dump(), option=orjson.OPT_INDENT_2).decode())
    return 0


def _tail(args: argparse.Namespace) -> int:
    from agents.kafka.clients import consume_topics

    settings = load_settings()
    topic = resolve_topic(settings, args.topic)
    _tool_logging()

    async def run() -> None:
        shown = 0
        async for _, _, _, _, value in consume_topics(
            settings, [topic], from_beginning=not args.from_end, idle_timeout=args.idle_timeout
        ):
            sys.stdout.write((value or b"null").decode("utf-8", "replace") + "\n")
            sys.stdout.flush()
            shown += 1
            if args.max_events is not None and shown >= args.max_events:
                return

    asyncio.run(run())
    return 0


def _export(args: argparse.Namespace) -> int:
    import os
    import tempfile

    from agents.tools.export import ExportError, export_tiers

    settings = load_settings()
    _tool_logging()
    try:
        if args.output is None:
            written, invalid = asyncio.run(
                export_tiers(settings, sys.stdout, fmt=args.format, progress=not args.quiet)
            )
        else:
            # a new file appears whole or not at all: an interrupted export leaves none
            directory = args.output.resolve().parent
            fd, temporary = tempfile.mkstemp(dir=directory, prefix=".export-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                    written, invalid = asyncio.run(
                        export_tiers(settings, out, fmt=args.format, progress=not args.quiet)
                    )
                Path(temporary).replace(args.output)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
    except ExportError as exc:
        print(f"vipstream export: {exc}", file=sys.stderr)
        return 1
    where = "stdout" if args.output is None else str(args.output)
    skipped = f" ({invalid} records without a customer key skipped)" if invalid else ""
    print(f"{written:,} customers written to {where}{skipped}", file=sys.stderr)
    return 0


def _erase(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from agents.kafka.admin import TopicError
    from agents.tools.erase import request_erasure

    settings = load_settings()
    _tool_logging()
    try:
        confirmed = asyncio.run(
            request_erasure(settings, list(args.customer_ids), wait_seconds=args.wait)
        )
    except ValidationError as exc:
        print(f"vipstream erase: not a customer id: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    except TopicError as exc:
        print(f"vipstream erase: {exc}", file=sys.stderr)
        return 1
    pending = [c for c in args.customer_ids if c not in confirmed]
    print(f"erasure requested for {len(args.customer_ids)} customer(s)", file=sys.stderr)
    if args.wait <= 0:
        return 0
    if pending:
        print(
            f"not confirmed within {args.wait:.0f}s (is a worker running and caught up?): "
            + " ".join(pending),
            file=sys.stderr,
        )
        return 1
    print("confirmed: every one's state and customer-tiers record are tombstoned", file=sys.stderr)
    return 0


def resolve_topic(settings: Settings, name: str) -> str:
    """Accept a configured topic key or default name ('tier-changes') or a full name."""
    for key in type(settings.topics).model_fields:
        if key == "prefix":
            continue
        default = Settings.model_fields["topics"].default.model_dump()[key]
        if name in (key, default, key.replace("_", "-")):
            return settings.topics.name(key)
    return name


def _schemas(args: argparse.Namespace) -> int:
    from schemas.export import write_schemas

    for path in write_schemas(args.directory):
        print(path)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from agents.tools.demo import run_demo

    return run_demo(
        customers=args.customers,
        days=args.days,
        days_per_second=args.days_per_second,
        seed=args.seed,
    )


if __name__ == "__main__":
    sys.exit(main())
