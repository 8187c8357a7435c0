"""Imports run one way (schemas -> streams -> agents); streams/ never imports Faust;
agents/engine/ imports neither faust, mode nor aiokafka; only agents/faust_port/ names a
library's private attributes."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def modules(package: str) -> list[str]:
    path = ROOT / package.replace(".", "/")
    return sorted(f"{package}.{m.name}" for m in pkgutil.iter_modules([str(path)]))


def imported_by(module_names: list[str]) -> set[str]:
    code = (
        "import sys, importlib\n"
        f"for name in {module_names!r}: importlib.import_module(name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def test_there_are_stream_modules_to_check() -> None:
    assert len(modules("streams")) >= 5


@pytest.mark.parametrize("module", modules("streams"))
def test_streams_do_not_import_faust_or_agents(module: str) -> None:
    loaded = imported_by([module])
    assert not {m for m in loaded if m == "faust" or m.startswith("faust.")}
    assert not {m for m in loaded if m == "agents" or m.startswith("agents.")}
    assert "aiokafka" not in loaded


@pytest.mark.parametrize("module", modules("schemas"))
def test_schemas_import_neither_streams_nor_agents(module: str) -> None:
    loaded = imported_by([module])
    assert not {m for m in loaded if m.split(".")[0] in {"streams", "agents", "faust"}}


def test_importing_the_app_module_has_no_side_effects() -> None:
    """Building nothing, connecting to nothing: importing agents.worker.app only defines things."""
    code = (
        "import socket, threading\n"
        "def refuse(*a, **k): raise AssertionError('network at import time')\n"
        "socket.socket.connect = refuse\n"
        "before = threading.active_count()\n"
        "import agents.worker.app, agents.cli, agents.settings\n"
        "assert threading.active_count() == before, 'a thread started at import time'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


FRAMEWORKS = ("faust", "mode", "aiokafka")


def test_there_are_engine_modules_to_check() -> None:
    assert len(modules("agents.engine")) >= 10


@pytest.mark.parametrize("module", modules("agents.engine"))
def test_the_engine_imports_no_framework(module: str) -> None:
    loaded = imported_by([module])
    found = {m for m in loaded if m.split(".")[0] in FRAMEWORKS}
    assert not found, f"{module} imports {sorted(found)[:5]}"


#: `obj._name` where `obj` is not self/cls: a reach into another object's privates
_PRIVATE = re.compile(
    r"(?<![\w.])(?!self\.|cls\.|super\(\)\.)[a-z_][\w]*(?:\(\))?\._[a-z][a-z0-9_]*"
)


def test_only_the_faust_port_reaches_into_private_attributes() -> None:
    """Outside agents/faust_port/, code touches no other object's private names (its
    own, through `self`, only)."""
    found = []
    for path in sorted((ROOT / "agents").rglob("*.py")):
        if "faust_port" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#", 1)[0]
            for match in _PRIVATE.finditer(code):
                text = match.group(0)
                if text.startswith(("self.", "cls.")):
                    continue
                found.append(f"{path.relative_to(ROOT)}:{number}: {text}")
    assert not found, "\n".join(found)
