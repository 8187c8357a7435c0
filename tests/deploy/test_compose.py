"""deploy/compose.yaml: services, volumes, mounts and ports refer to each other, and the
workers' environment is a configuration vipstream accepts. (No Docker engine here:
the file is checked, not run.)"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import pytest

from agents.settings import Settings
from tests.deploy.tools import DEPLOY, ROOT, image_env, load_yaml

COMPOSE = load_yaml(DEPLOY / "compose.yaml")
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
WORKERS = ["worker-1", "worker-2"]
WEB_PORT = Settings.model_fields["web"].default.port


def volumes_of(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each short-syntax volume entry."""
    pairs = []
    for entry in service.get("volumes", []):
        source, target, *_ = entry.split(":")
        pairs.append((source, target))
    return pairs


def is_bind(source: str) -> bool:
    return source.startswith((".", "/"))


def published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port"""
    ports = {}
    for entry in service.get("ports", []):
        host, container = str(entry).split(":")
        ports[int(container)] = int(host)
    return ports


def test_the_stack_has_kafka_two_workers_prometheus_and_grafana() -> None:
    assert {"kafka", *WORKERS, "prometheus", "grafana"} <= set(SERVICES)
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")


def test_dependencies_name_services() -> None:
    for name, service in SERVICES.items():
        depends = service.get("depends_on", [])
        assert set(depends) <= set(SERVICES), name


def test_named_volumes_are_declared_and_used() -> None:
    used = {
        source
        for service in SERVICES.values()
        for source, _ in volumes_of(service)
        if not is_bind(source)
    }
    assert used == set(COMPOSE["volumes"])


def test_bind_mounts_exist_in_deploy() -> None:
    binds = [
        source
        for service in SERVICES.values()
        for source, _ in volumes_of(service)
        if is_bind(source)
    ]
    assert binds
    for source in binds:
        assert (DEPLOY / source).exists(), source


@pytest.mark.parametrize("name", [*WORKERS, "simulate"])
def test_vipstream_images_build_from_the_dockerfile(name: str) -> None:
    build = SERVICES[name]["build"]
    assert (DEPLOY / build["context"]).resolve() == ROOT
    assert (ROOT / build["dockerfile"]) == DEPLOY / "Dockerfile"


def test_workers_are_distinct_with_their_own_data_and_port() -> None:
    hosts, data, host_ports = set(), set(), set()
    for name in WORKERS:
        worker = SERVICES[name]
        assert worker["hostname"] == name
        assert worker["environment"]["VIPSTREAM_WEB__ADVERTISED_HOST"] == name
        volumes = {target: source for source, target in volumes_of(worker)}
        data.add(volumes["/var/lib/vipstream/data"])
        host_ports.add(published(worker)[WEB_PORT])
        hosts.add(worker["hostname"])
        assert int(worker["stop_grace_period"].rstrip("s")) >= 30
    assert len(hosts) == len(data) == len(host_ports) == len(WORKERS)


@pytest.mark.parametrize("name", [*WORKERS, "simulate"])
def test_worker_environment_is_a_valid_configuration(
    name: str, settings_from_env: Callable[[Mapping[str, str]], Settings]
) -> None:
    service = SERVICES[name]
    env = {k: str(v) for k, v in service["environment"].items()}
    # the compose secrets the service mounts at /run/secrets/NAME, read from deploy/
    for secret in service.get("secrets", []):
        source = str(DEPLOY / COMPOSE["secrets"][secret]["file"])
        env = {k: v.replace(f"/run/secrets/{secret}", source) for k, v in env.items()}
    # the image's own environment first, as in the container
    settings = settings_from_env({**image_env(), **env})
    assert str(settings.datadir) == "/var/lib/vipstream/data"
    kafka = SERVICES["kafka"]["environment"]
    host, port = settings.bootstrap_servers[0].split(":")
    assert host == SERVICES["kafka"]["hostname"]
    advertised = dict(
        reversed(item.split("://")) for item in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    listener = advertised[f"{host}:{port}"]
    protocols = dict(
        pair.split(":") for pair in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert protocols[listener] == settings.kafka.security_protocol == "SASL_PLAINTEXT"
    assert settings.kafka.sasl_mechanism in kafka["KAFKA_SASL_ENABLED_MECHANISMS"].split(",")
    # the broker knows the worker's user with the password in its secret file
    jaas = kafka[f"KAFKA_LISTENER_NAME_{listener}_{settings.kafka.sasl_mechanism}_SASL_JAAS_CONFIG"]
    user = f'user_{settings.kafka.sasl_username}="{settings.kafka.password()}"'
    assert user in jaas
    assert settings.web.tokens()  # the data endpoints need a token
    # one broker: no topic can have more replicas
    assert settings.kafka.replication_factor == 1
    assert settings.web.port == WEB_PORT


def test_kafka_runs_in_kraft_mode_on_its_volume() -> None:
    kafka = SERVICES["kafka"]
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = env["KAFKA_NODE_ID"]
    listeners = {}  # name -> port, from NAME://host:port
    for listener in env["KAFKA_LISTENERS"].split(","):
        name, _, address = listener.partition("://")
        listeners[name] = int(address.rpartition(":")[2])
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node}@kafka:{listeners[controller]}"
    protocols = dict(
        pair.split(":") for pair in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(listeners) <= set(protocols)
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16
    targets = [target for _, target in volumes_of(kafka)]
    assert env["KAFKA_LOG_DIRS"] in targets
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1
    assert "healthcheck" in kafka
    for name in WORKERS:
        assert SERVICES[name]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_prometheus_scrapes_both_workers_with_the_rules() -> None:
    prometheus = SERVICES["prometheus"]
    mounts = {target: source for source, target in volumes_of(prometheus)}
    assert mounts["/etc/prometheus"] == "./prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = config["scrape_configs"]
    (static,) = job["static_configs"]
    assert set(static["targets"]) == {f"{SERVICES[w]['hostname']}:{WEB_PORT}" for w in WORKERS}


def test_grafana_is_provisioned_with_the_datasource_and_dashboard() -> None:
    grafana = SERVICES["grafana"]
    mounts = {target: source for source, target in volumes_of(grafana)}
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    (provider,) = load_yaml(DEPLOY / "grafana/provisioning/dashboards/vipstream.yaml")["providers"]
    dashboards = provider["options"]["path"]
    assert mounts[dashboards] == "./grafana/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dashboards + "/")
    assert (DEPLOY / "grafana/dashboards" / home.removeprefix(dashboards + "/")).is_file()
    (source,) = load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yaml")[
        "datasources"
    ]
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus"
    assert url.hostname in SERVICES
    assert url.port == published(SERVICES["prometheus"]).get(9090, 9090)


def test_compose_runs_the_kafka_version_the_tests_run() -> None:
    from agents.tools.kafka_broker import kafka_version

    assert SERVICES["kafka"]["image"] == f"apache/kafka:{kafka_version()}"
