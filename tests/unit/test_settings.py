"""Configuration: TOML file, environment overrides, defaults, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from agents.settings import ConfigError, broker_servers, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("VIPSTREAM_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vipstream.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_configuration() -> None:
    settings = load_settings()
    assert settings.broker == "kafka://127.0.0.1:9092"
    assert settings.kafka.partitions == 8
    assert settings.ingest.currency == "EUR"
    assert settings.cost.channel_rate_per_minute["phone"] > 0


def test_toml_then_environment_then_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path,
        """
        app_id = "from-file"
        [kafka]
        partitions = 4
        [cost]
        labour_rate_per_hour = 50
        [cost.channel_rate_per_minute]
        phone = 0.1
        chat = 0.1
        email = 0.1
        video = 0.1
        web = 0.1
    """,
    )
    monkeypatch.setenv("VIPSTREAM_CONFIG", str(config))
    monkeypatch.setenv("VIPSTREAM_COST__LABOUR_RATE_PER_HOUR", "60")
    monkeypatch.setenv("VIPSTREAM_BROKER", "kafka://k1:9093;kafka://k2")
    settings = load_settings({"web": {"port": 7000}})
    assert settings.app_id == "from-file"
    assert settings.kafka.partitions == 4
    assert settings.cost.labour_rate_per_hour == 60  # the environment beats the file
    assert settings.cost.overhead_per_contact == 0.5  # untouched keys keep their default
    assert settings.web.port == 7000
    assert settings.web.host == "0.0.0.0"
    assert settings.bootstrap_servers == ["k1:9093", "k2:9092"]


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("VIPSTREAM_KAFKA__PARTITIONS", "0", "kafka.partitions"),
        ("VIPSTREAM_KAFKA__PARTITIONS", "eight", "kafka.partitions"),
        ("VIPSTREAM_COST__LABOUR_RATE_PER_HOUR", "-1", "cost.labour_rate_per_hour"),
        ("VIPSTREAM_INGEST__CURRENCY", "euro", "ingest.currency"),
        ("VIPSTREAM_BROKER", "http://x:9092", "broker"),
        ("VIPSTREAM_STORE", "redis://", "store"),
        ("VIPSTREAM_KAFKA__HEARTBEAT_INTERVAL_SECONDS", "9", "kafka"),
        # the Kafka consumer refuses a session timeout above the request timeout (30 s)
        ("VIPSTREAM_KAFKA__SESSION_TIMEOUT_SECONDS", "40", "request_timeout_seconds"),
        # a produced message retried for less time than one request may take
        ("VIPSTREAM_KAFKA__DELIVERY_TIMEOUT_SECONDS", "20", "delivery_timeout_seconds"),
        ("VIPSTREAM_KAFKA__DELIVERY_TIMEOUT_SECONDS", "5", "kafka.delivery_timeout_seconds"),
        # so many remembered ids that a customer's state could exceed the largest message
        ("VIPSTREAM_INGEST__DEDUPE_MAX_IDS_PER_CUSTOMER", "100000", "kafka.max_message_bytes"),
        ("VIPSTREAM_INGEST__DEDUPE_MAX_IDS_PER_CUSTOMER", "300000", "dedupe_max_ids"),
        ("VIPSTREAM_KAFKA__MAX_MESSAGE_BYTES", "1000", "kafka.max_message_bytes"),
        # security settings that cannot work, named without their secrets
        ("VIPSTREAM_KAFKA__SECURITY_PROTOCOL", "SASL_SSL", "sasl_username"),
        ("VIPSTREAM_KAFKA__SECURITY_PROTOCOL", "TLS", "kafka.security_protocol"),
        ("VIPSTREAM_KAFKA__SSL_CAFILE", "/nonexistent/ca.pem", "ssl_cafile"),
        ("VIPSTREAM_KAFKA__SSL_CERTFILE", "/etc/hostname", "ssl_keyfile"),
        ("VIPSTREAM_WEB__AUTH_TOKEN_FILE", "/nonexistent/tokens", "auth_token_file"),
        ("VIPSTREAM_WEB__AUTH_TOKEN_FILE", "/dev/null", "auth_token_file"),
        ("VIPSTREAM_KAFKA__SASL_PASSWORD_FILE", "/dev/null", "sasl_password_file"),
        ("VIPSTREAM_WEB__METRICS_AUTH", "true", "auth_token_file"),
        ("VIPSTREAM_WEB__TLS_CERTFILE", "/nonexistent/web.pem", "tls_certfile"),
        ("VIPSTREAM_WEB__TLS_CERTFILE", "/etc/hostname", "tls_keyfile"),
        ("VIPSTREAM_WEB__TLS_CAFILE", "/etc/hostname", "tls_cafile"),
    ],
)
def test_invalid_values_fail_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert named in str(caught.value)


def test_the_error_names_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIPSTREAM_KAFKA__PARTITIONS", "0")
    with pytest.raises(ConfigError, match="VIPSTREAM_KAFKA__PARTITIONS"):
        load_settings()


def test_unknown_key_in_the_file_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIPSTREAM_CONFIG", str(write(tmp_path, "[kafka]\npartitons = 4\n")))
    with pytest.raises(ConfigError, match=r"kafka\.partitons"):
        load_settings()


def test_unknown_environment_variable_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIPSTREAM_KAFKA__PARTITONS", "4")
    with pytest.raises(ConfigError, match="VIPSTREAM_KAFKA__PARTITONS"):
        load_settings()


def test_nested_mapping_keys_are_known(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "VIPSTREAM_COST__CHANNEL_RATE_PER_MINUTE",
        '{"phone": 1, "chat": 1, "email": 1, "video": 1, "web": 1}',
    )
    assert load_settings().cost.channel_rate_per_minute["phone"] == 1


def test_missing_config_file_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIPSTREAM_CONFIG", "/nonexistent/vipstream.toml")
    with pytest.raises(ConfigError, match="no such file"):
        load_settings()


def test_broken_toml_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIPSTREAM_CONFIG", str(write(tmp_path, "partitions = [\n")))
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_settings()


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(Exception, match="frozen"):
        settings.app_id = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("url", "servers"),
    [
        ("kafka://a:1", ["a:1"]),
        ("kafka://a", ["a:9092"]),
        ("kafka://a:1;kafka://b:2", ["a:1", "b:2"]),
        ("kafka://a:1, kafka://b:2", ["a:1", "b:2"]),
    ],
)
def test_broker_urls(url: str, servers: list[str]) -> None:
    assert broker_servers(url) == servers


@pytest.mark.parametrize("url", ["", "a:9092", "kafka://", "kafka://a:port", "tcp://a:1"])
def test_bad_broker_urls(url: str) -> None:
    with pytest.raises(ValueError, match=r"kafka://|no broker"):
        broker_servers(url)


def test_the_readme_lists_every_key_with_its_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's configuration block parses, and every value in it is the default."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("# vipstream.toml — every key, with its default\n", 1)[1]
    block = block.split("```", 1)[0]
    monkeypatch.setenv("VIPSTREAM_CONFIG", str(write(tmp_path, block)))
    documented = load_settings().model_dump()
    monkeypatch.delenv("VIPSTREAM_CONFIG")
    defaults = load_settings().model_dump()
    assert documented == defaults

    def keys(tree: dict[str, object], prefix: str = "") -> set[str]:
        found = set()
        for name, value in tree.items():
            if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
                found |= keys(value, f"{prefix}{name}.")  # type: ignore[arg-type]
            else:
                found.add(prefix + name)
        return found

    import tomllib

    # keys without a default (TOML has no null) are shown commented out: "# key = ..."
    unset = {key for key in keys(defaults) if _value_at(defaults, key) is None}
    commented = {key for key in unset if f"# {key.rsplit('.', 1)[-1]} = " in block}
    missing = keys(defaults) - keys(tomllib.loads(block)) - {"care.catalogue"} - commented
    assert not missing, f"keys not documented in the README: {sorted(missing)}"


def _value_at(tree: dict[str, object], dotted: str) -> object:
    value: object = tree
    for part in dotted.split("."):
        assert isinstance(value, dict)
        value = value[part]
    return value


def test_a_sasl_password_is_never_in_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIPSTREAM_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("VIPSTREAM_KAFKA__SASL_PASSWORD", "hunter2-secret-value")
    monkeypatch.setenv("VIPSTREAM_KAFKA__SSL_CAFILE", "/nonexistent/ca.pem")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "hunter2-secret-value" not in str(caught.value)
    assert "sasl_username" in str(caught.value)


def test_a_web_certificate_and_key_that_do_not_match_fail_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    issued, other = ca.issue_cert("127.0.0.1"), ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "web.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    other.private_key_pem.write_to_path(str(key))
    monkeypatch.setenv("VIPSTREAM_WEB__TLS_CERTFILE", str(cert))
    monkeypatch.setenv("VIPSTREAM_WEB__TLS_KEYFILE", str(key))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "tls_certfile/tls_keyfile" in str(caught.value)
    other.private_key_pem.write_to_path(str(key))
    issued.private_key_pem.write_to_path(str(key))
    monkeypatch.setenv("VIPSTREAM_WEB__TLS_CAFILE", str(key))  # a key is no CA bundle
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "tls_cafile" in str(caught.value)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("VIPSTREAM_WEB__TLS_CAFILE", str(tmp_path / "ca.pem"))
    assert load_settings().web.scheme == "https"
