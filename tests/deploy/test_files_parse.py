"""Every YAML and JSON file in deploy/ parses, and the structured ones are not empty."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.deploy.tools import DEPLOY

YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml"))
JSON_FILES = sorted(DEPLOY.rglob("*.json"))


def test_deploy_has_the_expected_files() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in DEPLOY.rglob("*") if p.is_file()}
    assert {
        "Dockerfile",
        "Dockerfile.dockerignore",
        "compose.yaml",
        "prometheus/prometheus.yml",
        "prometheus/prometheus-kubernetes.yml",
        "prometheus/alerts.yml",
        "prometheus/alerts_test.yml",
        "prometheus/alerts_test_long.yml",
        "grafana/provisioning/datasources/prometheus.yaml",
        "grafana/provisioning/dashboards/vipstream.yaml",
        "grafana/dashboards/vipstream.json",
        "k8s/kustomization.yaml",
        "k8s/statefulset.yaml",
        "k8s/service.yaml",
        "k8s/configmap.yaml",
        "k8s/poddisruptionbudget.yaml",
    } <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_yaml_parses(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert documents, f"{path} has no YAML document"
    assert all(isinstance(d, dict) and d for d in documents)


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_json_parses(path: Path) -> None:
    document = json.loads(path.read_text())
    assert isinstance(document, dict)
    assert document
