"""Imports run one way (schemas -> streams -> agents); streams/ never imports Faust."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def modules(package: str) -> list[str]:
    return sorted(f"{package}.{m.name}" for m in pkgutil.iter_modules([str(ROOT / package)]))


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
