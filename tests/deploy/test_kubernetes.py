"""deploy/k8s: the kinds and fields a vipstream StatefulSet needs, consistent with each
other, with the image and with a configuration vipstream accepts. (No cluster here: the
manifests are checked, not applied.)"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from agents.settings import ConfigError, Settings
from tests.deploy.tools import DEPLOY, image_env, load_yaml, load_yaml_documents

K8S = DEPLOY / "k8s"


def manifests() -> dict[str, dict[str, Any]]:
    """kind -> the one manifest of that kind (Secrets: "Secret/<name>", one per name)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_yaml_documents(path):
            kind = doc["kind"]
            if kind == "Secret":
                kind = f"Secret/{doc['metadata']['name']}"
            assert kind not in found, f"two {kind}s"
            found[kind] = doc
    return found


M = manifests()
STATEFULSET = M["StatefulSet"]
POD = STATEFULSET["spec"]["template"]
(CONTAINER,) = POD["spec"]["containers"]
ENV = {item["name"]: item for item in CONTAINER["env"]}
PORTS = {port["name"]: port["containerPort"] for port in CONTAINER["ports"]}


def config_toml() -> tuple[str, str, str]:
    """(mount path, key, TOML text) of the ConfigMap file VIPSTREAM_CONFIG names."""
    path = Path(ENV["VIPSTREAM_CONFIG"]["value"])
    (volume,) = [v for v in POD["spec"]["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == M["ConfigMap"]["metadata"]["name"]
    (mount,) = [m for m in CONTAINER["volumeMounts"] if m["name"] == volume["name"]]
    assert str(path.parent) == mount["mountPath"]
    return mount["mountPath"], path.name, M["ConfigMap"]["data"][path.name]


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_kustomization_lists_every_manifest() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert kustomization["namespace"] == M["Namespace"]["metadata"]["name"]


def test_the_kinds_a_worker_deployment_needs() -> None:
    assert set(M) == {
        "Namespace",
        "ConfigMap",
        "Secret/vipstream-kafka",
        "Secret/vipstream-web",
        "Service",
        "StatefulSet",
        "PodDisruptionBudget",
    }


def secret_mounts() -> dict[str, tuple[str, dict[str, str]]]:
    """mount path -> (Secret name, its keys and values) of every Secret volume."""
    mounts = {m["name"]: m for m in CONTAINER["volumeMounts"]}
    found = {}
    for volume in POD["spec"]["volumes"]:
        if "secret" in volume:
            name = volume["secret"]["secretName"]
            mount = mounts[volume["name"]]
            assert mount["readOnly"] is True
            found[mount["mountPath"]] = (name, M[f"Secret/{name}"]["stringData"])
    return found


def test_the_configuration_reads_each_secret_from_its_mounted_file() -> None:
    """The password and the tokens come from files in the Secrets' mounts (not from
    variables), each a key its Secret has; the pod's environment holds no secret."""
    _, _, text = config_toml()
    config = tomllib.loads(text)
    named = [config["kafka"]["sasl_password_file"], config["web"]["auth_token_file"]]
    mounts = secret_mounts()
    for path in named:
        directory, _, key = path.rpartition("/")
        assert key in mounts[directory][1], path
    assert {name for name, _ in mounts.values()} == {"vipstream-kafka", "vipstream-web"}
    assert not any("PASSWORD" in name or "TOKEN" in name for name in ENV)
    assert config["kafka"]["security_protocol"] == "SASL_SSL"


def test_the_secrets_ship_empty_and_a_worker_refuses_them(
    settings_from_env: Callable[[Mapping[str, str]], Settings], tmp_path: Path
) -> None:
    """No credential in the repository; applied unfilled, the workers stop at start-up
    naming both keys, instead of connecting without a password or serving data openly."""
    for _, values in secret_mounts().values():
        assert set(values.values()) == {""}
    with pytest.raises(ConfigError) as refused:
        settings_from_env(configured_env(tmp_path, filled=False))
    assert "sasl_password_file" in str(refused.value)
    assert "auth_token_file" in str(refused.value)


def test_headless_service_selects_the_pods() -> None:
    service = M["Service"]["spec"]
    assert service["clusterIP"] == "None"
    assert service["publishNotReadyAddresses"] is True  # rebalancing workers stay reachable
    assert selects(service["selector"], POD["metadata"]["labels"])
    (port,) = service["ports"]
    assert port["targetPort"] in PORTS
    assert STATEFULSET["spec"]["serviceName"] == M["Service"]["metadata"]["name"]


def test_statefulset_selects_its_pods_and_claims_a_volume_for_the_datadir(
    settings_from_env: Callable[[Mapping[str, str]], Settings], tmp_path: Path
) -> None:
    spec = STATEFULSET["spec"]
    assert selects(spec["selector"]["matchLabels"], POD["metadata"]["labels"])
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    mounts = {m["name"]: m["mountPath"] for m in CONTAINER["volumeMounts"]}
    settings = settings_from_env(configured_env(tmp_path))
    assert mounts[claim["metadata"]["name"]] == str(settings.datadir)


def test_pods_advertise_their_dns_name_under_the_headless_service() -> None:
    names = [item["name"] for item in CONTAINER["env"]]
    pod_name = ENV["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert pod_name == "metadata.name"
    service = M["Service"]["metadata"]["name"]
    assert ENV["VIPSTREAM_WEB__ADVERTISED_HOST"]["value"] == f"$(POD_NAME).{service}"
    # Kubernetes expands $(POD_NAME) only from variables defined earlier in the list
    assert names.index("POD_NAME") < names.index("VIPSTREAM_WEB__ADVERTISED_HOST")


def configured_env(tmp_path: Path, *, filled: bool = True) -> dict[str, str]:
    """The VIPSTREAM_* environment of a pod, the ConfigMap's TOML written to a file and
    the Secrets' files under tmp_path, where the TOML then looks for them (filled with
    test values, or as shipped)."""
    _, key, text = config_toml()
    for mount, (name, values) in secret_mounts().items():
        directory = tmp_path / name
        directory.mkdir(exist_ok=True)
        for item, value in values.items():
            (directory / item).write_text(f"test-{item}\n" if filled else value)
        text = text.replace(f'"{mount}/', f'"{directory}/')
    config = tmp_path / key
    config.write_text(text)
    env = image_env()  # the image's own environment, then the pod's
    for name, item in ENV.items():
        if name.startswith("VIPSTREAM_"):
            env[name] = item["value"].replace("$(POD_NAME)", "vipstream-0")
    env["VIPSTREAM_CONFIG"] = str(config)
    return env


def test_configmap_toml_is_a_valid_configuration(
    settings_from_env: Callable[[Mapping[str, str]], Settings], tmp_path: Path
) -> None:
    _, _, text = config_toml()
    assert tomllib.loads(text)  # TOML syntax, before the settings' own checks
    settings = settings_from_env(configured_env(tmp_path))
    assert settings.advertised_host == "vipstream-0.vipstream"
    assert settings.web.port == PORTS["http"]
    assert settings.kafka.replication_factor == 3  # a production cluster, not one broker
    # more replicas than partitions would leave workers idle
    assert STATEFULSET["spec"]["replicas"] <= settings.kafka.partitions


@pytest.mark.parametrize("probe", ["startupProbe", "readinessProbe", "livenessProbe"])
def test_probes_ask_healthz(probe: str) -> None:
    http = CONTAINER[probe]["httpGet"]
    assert http["path"] == "/healthz"
    assert http["port"] in PORTS
    # liveness must outlast a rebalance or a short broker outage
    if probe == "livenessProbe":
        spec = CONTAINER[probe]
        assert spec["periodSeconds"] * spec["failureThreshold"] >= 120


def test_resources_have_requests_and_limits() -> None:
    resources = CONTAINER["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind])


def test_prometheus_scrape_annotations_point_at_metrics() -> None:
    annotations = POD["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == PORTS["http"]


def test_prometheus_for_kubernetes_finds_the_headless_service() -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus-kubernetes.yml")
    (job,) = config["scrape_configs"]
    (sd,) = job["dns_sd_configs"]
    service = M["Service"]["metadata"]["name"]
    namespace = M["Namespace"]["metadata"]["name"]
    assert sd["names"] == [f"{service}.{namespace}.svc"]
    assert sd["port"] == PORTS["http"]


def test_pod_disruption_budget_covers_the_workers() -> None:
    spec = M["PodDisruptionBudget"]["spec"]
    assert selects(spec["selector"]["matchLabels"], POD["metadata"]["labels"])
    assert spec.get("maxUnavailable") == 1


def test_pods_run_as_the_image_user_and_stop_gracefully() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    found = re.search(r"useradd .*--uid (\d+)", dockerfile)
    assert found, "the Dockerfile creates its user with a fixed uid"
    uid = int(found.group(1))
    security = POD["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == security["fsGroup"] == uid
    assert POD["spec"]["terminationGracePeriodSeconds"] >= 30
    assert CONTAINER["args"] == ["worker"]
