"""`vipstream worker`: wait for the broker, create the topics, run the Faust worker."""

from __future__ import annotations

import asyncio
import logging
import logging.config
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson

from agents.kafka.acls import AccessDenied, check_access
from agents.kafka.admin import TopicError, ensure_topics
from agents.kafka.security import CredentialsRefused, client_options
from agents.kafka.transactions import TransactionsUnsupported, check_transactions
from agents.logs import logging_config
from agents.settings import Settings

log = logging.getLogger("vipstream.worker")


def run_worker(settings: Settings) -> int:
    from agents.faust_port.worker import Worker
    from agents.worker.app import create_app

    config = logging_config(settings.log_level, settings.log_format)
    logging.config.dictConfig(config)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        # A worker started before the broker waits for it (logging each retry).
        loop.run_until_complete(_wait_for_broker(settings))
    except (TopicError, TransactionsUnsupported, CredentialsRefused, AccessDenied) as exc:
        print(f"vipstream: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    app = create_app(settings)
    log.info(
        "starting worker app_id=%s broker=%s partitions=%d web=%s:%d store=%s",
        settings.app_id,
        ",".join(settings.bootstrap_servers),
        settings.kafka.partitions,
        settings.web.host,
        settings.web.port,
        settings.store,
        extra={
            "event": "worker_starting",
            "app_id": settings.app_id,
            "partitions": settings.kafka.partitions,
            "store": settings.store,
            "web_port": settings.web.port,
        },
    )
    log.info(
        "settings %s",
        orjson.dumps(settings.dump()).decode(),
        extra={"event": "worker_settings"},
    )
    # Faust sets up logging again when the worker starts: hand it the same configuration
    worker = Worker(app, loop=loop, loglevel=settings.log_level, quiet=True, logging_config=config)
    worker.execute_from_commandline()  # returns only via SystemExit
    return 0


async def _wait_for_broker(settings: Settings) -> None:
    """Create the topics once the broker answers. Meanwhile the web port answers
    `/healthz` (503 `broker_unreachable`, as a running worker does in an outage) and
    nothing else, so probes and operators see why the worker does not consume yet.
    Released before Faust's web server binds it."""
    from aiohttp import web

    async def waiting(request: web.Request) -> web.Response:
        if request.path != "/healthz":
            return web.json_response({"error": "waiting for the broker"}, status=503)
        return web.json_response({"status": "broker_unreachable"}, status=503)

    server = web.Application()
    server.router.add_route("GET", "/{tail:.*}", waiting)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(
            runner,
            settings.web.host,
            settings.web.port,
            ssl_context=settings.web.server_ssl_context(),
        ).start()
    except OSError as exc:  # the port is taken: Faust's own server will say so later
        log.warning("cannot serve /healthz while waiting for the broker: %s", exc)
    try:
        await ensure_topics(settings, wait_seconds=float("inf"))
        await check_access(settings)
        if settings.processing_guarantee == "exactly_once":
            await check_transactions(client_options(settings), settings.app_id)
    finally:
        await runner.cleanup()


def spawn_worker(
    *,
    web_port: int,
    datadir: Path,
    env: Mapping[str, str],
    log_path: Path,
    cwd: Path | None = None,
    prefix: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """Start `vipstream worker` as a child process in its own session, logging to a file.

    Its own session: a Ctrl-C in the parent's terminal does not reach it, so the parent
    stops it deliberately (SIGTERM to the process group) and in order. `prefix`: a
    command that execs the worker (e.g. `ip netns exec NAME`, in a test's network
    namespace).
    """
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [
                *prefix,
                sys.executable,
                "-m",
                "agents.cli",
                "worker",
                "--web-port",
                str(web_port),
                "--datadir",
                str(datadir),
            ],
            env=dict(env),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
