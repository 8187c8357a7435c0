"""The HTTP API against its OpenAPI document (schemas/http.py): the document served is
the repository's; real bodies match it; odd customer ids get 400/404, never a stack
trace; schemathesis fuzzes a live worker with every check it has."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from schemas.export import REPOSITORY_DIR
from schemas.http import CustomerFigures, ErrorBody, TiersReport
from tests.integration.conftest import RunningBroker
from tests.oracle import figures_of_file
from tests.support import Worker, cli, isolated_env, running, simulate_history, wait_for

pytestmark = pytest.mark.integration

TOKEN = "fuzz-token-4f9e2a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Served:
    worker: Worker
    customers: list[str]
    work: Path


@pytest.fixture(scope="module")
def served(broker: RunningBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One worker with bearer tokens, a replayed history and its first days closed."""
    work = tmp_path_factory.mktemp("http")
    tokens = work / "tokens"
    tokens.write_text(f"{TOKEN}\n")
    env = isolated_env(broker.url, VIPSTREAM_WEB__AUTH_TOKEN_FILE=str(tokens))
    history = simulate_history(
        env, work / "history.jsonl", customers=40, days=75, seed=9, start="2026-03-01T00:00:00Z"
    )
    expected, _ = figures_of_file(history)
    with running(Worker(env, work / "w1", work / "w1.log")) as worker:
        cli(["replay", "--quiet", str(history)], env)
        wait_for(
            lambda: worker.get("/tiers", AUTH)[1].get("population", 0) > 0,
            timeout=60,
            what="a closed day with judged customers",
        )
        yield Served(worker, sorted(expected), work)


def test_the_served_document_is_the_repository_copy(served: Served) -> None:
    status, document = served.worker.get("/openapi.json")  # no token needed
    assert status == 200
    on_disk = json.loads((REPOSITORY_DIR / "openapi.json").read_text(encoding="utf-8"))
    assert document == on_disk


def test_real_bodies_match_the_document(served: Served) -> None:
    for customer in served.customers:
        status, body = served.worker.get(f"/customers/{urllib.parse.quote(customer)}", AUTH)
        assert status == 200, body
        assert CustomerFigures.model_validate(body).customer_id == customer
    status, body = served.worker.get("/tiers", AUTH)
    assert status == 200
    assert TiersReport.model_validate(body).population > 0
    status, body = served.worker.get("/tiers")
    assert status == 401
    assert ErrorBody.model_validate(body).error == "unauthorized"


ODD_IDS = [
    ("257 characters", "c" * 257, 400),
    ("4 KiB", "c" * 4096, 400),
    ("a control character", "C\x01", 400),
    ("a NUL", "C\x00", 400),
    ("a newline", "C\n1", 400),
    ("a DEL", "C\x7f", 400),
    ("unicode, unknown", "客户-1", 404),
    ("an encoded slash", "C/../tiers", 404),
    ("quotes and SQL", "' OR 1=1 --", 404),
    ("percent signs", "%ZZ%", 404),
    ("256 characters, unknown", "c" * 256, 404),
    ("spaces", "   ", 404),
]


@pytest.mark.parametrize(("why", "customer_id", "status"), ODD_IDS, ids=[c[0] for c in ODD_IDS])
def test_odd_customer_ids_get_400_or_404_as_json(
    served: Served, why: str, customer_id: str, status: int
) -> None:
    path = "/customers/" + urllib.parse.quote(customer_id, safe="")
    got, body = served.worker.get(path, AUTH)
    assert got == status, body
    error = ErrorBody.model_validate(body)
    assert error.error == ("invalid_customer_id" if status == 400 else "unknown customer")


def test_an_oversized_request_line_is_refused_without_a_stack_trace(served: Served) -> None:
    got, body = served.worker.get("/customers/" + "c" * 20000, AUTH)
    assert got in (400, 414)
    assert "Traceback" not in str(body)


def test_schemathesis_finds_nothing(served: Served) -> None:
    """Every check schemathesis has (no 5xx, status codes, content types and bodies as
    documented, auth not ignored, ...), on examples, the coverage phase (boundary and
    invalid values) and random fuzzing."""
    url = served.worker.url
    report = served.work / "schemathesis"
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{url}/openapi.json",
            "--checks",
            "all",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "500",
            "--seed",
            "20261206",
            "--workers",
            "1",
            "--report",
            "junit",
            "--report-dir",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
