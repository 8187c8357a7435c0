"""Helpers for the deploy/ checks: paths, YAML, promtool, the metric names the code registers."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from agents.metrics import Metrics
from tests.support import ROOT

DEPLOY = ROOT / "deploy"

#: The sample names a family of each type exposes (a counter family's own name, without
#: `_total`, is never a sample: querying it finds nothing). `_created` samples left out.
_SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
    "gauge": ("",),
}
#: A PromQL identifier; names with a colon are recording rules.
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')


def image_env() -> dict[str, str]:
    """The VIPSTREAM_* variables deploy/Dockerfile sets in the image (ENV KEY=VALUE)."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    env = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(pair.split("=", 1) for pair in line.split()[1:] if "=" in pair)
    return {k: v for k, v in env.items() if k.startswith("VIPSTREAM_")}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def promtool(*args: str, cwd: Path) -> str:
    """Run promtool; fail with its output unless it succeeds. Returns stdout + stderr."""
    binary = shutil.which("promtool")
    assert binary, (
        "promtool is missing: `make test` installs it (scripts/system-deps installs the "
        "Debian package prometheus, as root)"
    )
    result = subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} exited {result.returncode}:\n{output}"
    )
    return output


def registered_metric_names() -> set[str]:
    """Every sample name a worker's /metrics can show: each family of a freshly built
    registry (families with labels and no samples yet included), by its type."""
    names = set()
    for family in text_string_to_metric_families(Metrics().render().decode()):
        names.update(family.name + suffix for suffix in _SAMPLE_SUFFIXES[family.type])
    return names


def promql_metric_names(
    expr: str, prefixes: tuple[str, ...] = ("vipstream_", "process_")
) -> set[str]:
    """Metric names with one of `prefixes` that a PromQL expression selects (string
    literals such as label values ignored)."""
    bare = _STRING.sub('""', expr)
    return {
        token
        for token in _IDENTIFIER.findall(bare)
        if token.startswith(prefixes) and ":" not in token
    }


def recording_rule_names(expr: str) -> set[str]:
    """Recording-rule names (level:metric:operations) an expression selects."""
    return {token for token in _IDENTIFIER.findall(_STRING.sub('""', expr)) if ":" in token}
