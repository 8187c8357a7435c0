"""deploy/Dockerfile: builds the package's console script, runs it as non-root, checks
/healthz, and its build context sends what the image needs. (No Docker engine here: the
file is checked, not built.)"""

from __future__ import annotations

import json
import re
import tomllib

from agents.settings import Settings
from tests.deploy.tools import DEPLOY, ROOT

DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    result = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def test_multi_stage_with_a_non_root_runtime() -> None:
    assert [k for k, _ in instructions()].count("FROM") == 2
    users = [args for keyword, args in final_stage() if keyword == "USER"]
    assert users
    assert users[-1] not in ("root", "0")


def test_entrypoint_is_the_packages_console_script() -> None:
    (entrypoint,) = [args for keyword, args in final_stage() if keyword == "ENTRYPOINT"]
    (command,) = [args for keyword, args in final_stage() if keyword == "CMD"]
    assert json.loads(entrypoint) == ["vipstream"]
    assert "vipstream" in PYPROJECT["project"]["scripts"]
    assert json.loads(command) == ["worker"]


def test_healthcheck_asks_healthz_on_the_web_port() -> None:
    (healthcheck,) = [args for keyword, args in final_stage() if keyword == "HEALTHCHECK"]
    assert "/healthz" in healthcheck
    default_port = Settings.model_fields["web"].default.port
    assert f"'VIPSTREAM_WEB__PORT', '{default_port}'" in healthcheck
    (expose,) = [args for keyword, args in final_stage() if keyword == "EXPOSE"]
    assert int(expose) == default_port


def test_datadir_exists_in_the_image_and_belongs_to_the_worker() -> None:
    env = " ".join(args for keyword, args in final_stage() if keyword == "ENV")
    found = re.search(r"VIPSTREAM_DATADIR=(\S+)", env)
    assert found
    datadir = found.group(1)
    assert re.search(rf"install -d -o vipstream -g vipstream {re.escape(datadir)}\b", DOCKERFILE)


def test_build_copies_the_packages_and_the_context_contains_them() -> None:
    copied = {
        source
        for keyword, args in instructions()
        if keyword == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    }
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.removesuffix("*") for pattern in include}
    assert copied == {"pyproject.toml", PYPROJECT["project"]["readme"], *packages}
    for source in copied:
        assert (ROOT / source).exists()
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*"  # everything out of the context, then back in:
    assert {f"!{source}" for source in copied} <= set(patterns)
