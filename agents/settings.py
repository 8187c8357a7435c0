"""The one validated configuration object.

Sources, strongest first: explicit overrides (CLI flags), `VIPSTREAM_*` environment
variables (nested keys joined by `__`), the TOML file named by `VIPSTREAM_CONFIG`,
defaults. Faust's own environment variables (WEB_PORT, BROKER_URL, ...) are never read:
the app is built with an empty Faust environment, so they cannot override these.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from schemas.care_config import CareSettings, SpikeSettings, TicketSettings
from schemas.config import CostSettings, IngestSettings, Section
from schemas.value_config import ClvSettings, PredictionSettings, TieringSettings, ValueSettings
from streams.codec import max_state_bytes

ENV_PREFIX = "VIPSTREAM_"
CONFIG_ENV = "VIPSTREAM_CONFIG"
#: VIPSTREAM_* variables that are not settings keys.
_NOT_SETTINGS = frozenset({CONFIG_ENV})

TopicName = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,200}$")]


class ConfigError(ValueError):
    """Invalid configuration; the message names the key and where it came from."""


class TopicSettings(Section):
    """Topic names (CONTRACT.md section 2); `prefix` is prepended to every one of them."""

    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{0,100}$")] = ""
    calls: TopicName = "calls"
    orders: TopicName = "orders"
    tickets: TopicName = "tickets"
    contact_preferences: TopicName = "contact-preferences"
    tier_changes: TopicName = "tier-changes"
    customer_tiers: TopicName = "customer-tiers"
    basic_question_spikes: TopicName = "basic-question-spikes"
    care_tasks: TopicName = "care-tasks"
    ticket_priorities: TopicName = "ticket-priorities"
    dead_letters: TopicName = "dead-letters"

    def name(self, key: str) -> str:
        """The full topic name of a logical topic key such as 'calls'."""
        return self.prefix + str(getattr(self, key))


class KafkaSettings(Section):
    """Consumer-group and topic behaviour. Timeouts are chosen, not inherited: see README."""

    partitions: Annotated[int, Field(ge=1, le=1024)] = 8
    replication_factor: Annotated[int, Field(ge=1, le=7)] = 1
    #: After a worker dies without leaving, its partitions move after this long.
    session_timeout_seconds: Annotated[float, Field(ge=1, le=300)] = 10.0
    heartbeat_interval_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    #: How long the group waits for members to rejoin during a rebalance. Faust's 60 s
    #: default made every group join on the embedded broker take ~30 s.
    rebalance_timeout_seconds: Annotated[float, Field(ge=1, le=600)] = 10.0
    #: Offsets (and the coalesced state before them) are committed this often.
    commit_interval_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    standby_replicas: Annotated[int, Field(ge=0, le=3)] = 0
    #: A request to the broker that takes longer than this fails and is retried.
    request_timeout_seconds: Annotated[float, Field(ge=1, le=300)] = 30.0
    #: A worker restores the state table's changelog partitions it is assigned with a
    #: plain consumer, in bulk, before Faust's recovery reads what is left (at most 70 %
    #: of request_timeout_seconds, then Faust reads the rest): see README "Restarts".
    bulk_restore: bool = True
    #: The largest message a worker produces: a customer's whole state is one changelog
    #: message. Faust's producer limit, and the state changelog topic's
    #: max.message.bytes (Apache Kafka's broker default is 1 MB).
    max_message_bytes: Annotated[int, Field(ge=1024 * 1024, le=64 * 1024 * 1024)] = 4 * 1024 * 1024
    #: Outputs and state writes wait this long to share a produce request. Faust's 0
    #: sent one request per message or two: most of the worker's time went into them.
    producer_linger_seconds: Annotated[float, Field(ge=0, le=1)] = 0.005
    #: The longest a fetch waits at the broker for records. Faust fixes 1.5 s; Apache
    #: Kafka answers as soon as records arrive, the embedded broker tends to wait it out.
    fetch_max_wait_seconds: Annotated[float, Field(ge=0.01, le=10)] = 0.1
    #: How long a produced message (an output, a state write, a value summary) is
    #: retried, through broker outages, before the worker gives up: it then stops and,
    #: restarted, replays from its last commit. Faust's producer default (20 minutes).
    delivery_timeout_seconds: Annotated[float, Field(ge=10, le=3600)] = 1200.0
    #: The last output of each send to a partition goes in a record batch of its own, so
    #: that the log end a broker lists is right even where it lists the last batch's
    #: first offset + 1 (the embedded broker, Tansu 0.6): otherwise a reader that stops
    #: at the listed end (aiokafka end_offsets, librdkafka watermarks, lag tools) misses
    #: the rest of the last batch until a later one arrives. Costs one produce round
    #: trip per flush; Apache Kafka lists the end right, so set false there.
    exact_log_end: bool = True
    #: How every client of the worker and the CLI talks to the brokers.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    #: With SASL_*: the mechanism, the user, and the password: a file holding it (a
    #: mounted secret; surrounding whitespace ignored) or VIPSTREAM_KAFKA__SASL_PASSWORD.
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password_file: Path | None = None
    sasl_password: SecretStr | None = None
    #: With SSL/SASL_SSL: the certificate authority to trust (default: the system's),
    #: a client certificate and key for mutual TLS, and whether the broker's host name
    #: must match its certificate (keep it on outside tests).
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True

    @model_validator(mode="after")
    def _security_complete(self) -> KafkaSettings:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and not self.sasl_username:
            raise ValueError(
                f"sasl_username is required with security_protocol={self.security_protocol}"
            )
        if sasl and self.sasl_password is None and self.sasl_password_file is None:
            raise ValueError(
                "sasl_password_file (or VIPSTREAM_KAFKA__SASL_PASSWORD) is required with "
                f"security_protocol={self.security_protocol}"
            )
        if self.sasl_password is not None and self.sasl_password_file is not None:
            raise ValueError("set sasl_password_file or sasl_password, not both")
        for name in ("sasl_password_file", "ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no readable file at {path}")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together (mutual TLS)")
        if self.sasl_password_file is not None and not self.password():
            raise ValueError(f"sasl_password_file: {self.sasl_password_file} is empty")
        return self

    def password(self) -> str | None:
        """The SASL password (read from its file each time: a rotated secret is picked up)."""
        if self.sasl_password is not None:
            return self.sasl_password.get_secret_value()
        if self.sasl_password_file is not None:
            return self.sasl_password_file.read_text().strip()
        return None

    @model_validator(mode="after")
    def _timeouts_fit(self) -> KafkaSettings:
        if self.heartbeat_interval_seconds * 3 > self.session_timeout_seconds:
            raise ValueError(
                "heartbeat_interval_seconds must be at most a third of session_timeout_seconds"
            )
        if self.session_timeout_seconds > self.request_timeout_seconds:
            raise ValueError(
                "session_timeout_seconds must not exceed request_timeout_seconds "
                "(the Kafka consumer refuses it)"
            )
        if self.delivery_timeout_seconds < self.request_timeout_seconds:
            raise ValueError("delivery_timeout_seconds must be at least request_timeout_seconds")
        return self


class WebSettings(Section):
    """Each worker's HTTP server (health, metrics, customer look-ups)."""

    host: str = "0.0.0.0"
    port: Annotated[int, Field(ge=1, le=65535)] = 6066
    #: The host other workers use to reach this one (requests are routed to the owner
    #: of a customer). Defaults to this machine's host name.
    advertised_host: str | None = None
    #: One bearer token per line (a mounted secret). When set, /customers/{id}, /tiers
    #: and /dashboard answer 401 without `Authorization: Bearer <one of them>`;
    #: /healthz stays open for probes.
    auth_token_file: Path | None = None
    #: With auth_token_file: /metrics needs a token too (give Prometheus one).
    metrics_auth: bool = False
    #: HTTPS on the web port: the server's certificate (chain) and private key, in PEM.
    #: Requests routed to a customer's owner then go over HTTPS too, verified against
    #: tls_cafile (default: the system's trust store) and advertised_host.
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    tls_cafile: Path | None = None

    @model_validator(mode="after")
    def _tokens_readable(self) -> WebSettings:
        if self.auth_token_file is not None:
            if not self.auth_token_file.is_file():
                raise ValueError(f"auth_token_file: no readable file at {self.auth_token_file}")
            if not self.tokens():
                raise ValueError(f"auth_token_file: {self.auth_token_file} holds no token")
        if self.metrics_auth and self.auth_token_file is None:
            raise ValueError("metrics_auth needs auth_token_file")
        for name in ("tls_certfile", "tls_keyfile", "tls_cafile"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no readable file at {path}")
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together")
        if self.tls_cafile is not None and self.tls_certfile is None:
            raise ValueError("tls_cafile is used only with tls_certfile and tls_keyfile")
        try:
            self.server_ssl_context()
        except ssl.SSLError as exc:
            raise ValueError(f"tls_certfile/tls_keyfile: not a usable PEM pair ({exc})") from None
        try:
            self.client_ssl_context()
        except ssl.SSLError as exc:
            raise ValueError(f"tls_cafile: not a usable PEM CA bundle ({exc})") from None
        return self

    def server_ssl_context(self) -> ssl.SSLContext | None:
        """The web server's TLS context (None: plain HTTP)."""
        if self.tls_certfile is None or self.tls_keyfile is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls_certfile, self.tls_keyfile)
        return context

    def client_ssl_context(self) -> ssl.SSLContext | None:
        """How a worker verifies another's certificate when it forwards a request to a
        customer's owner (None: plain HTTP)."""
        if self.tls_certfile is None:
            return None
        return ssl.create_default_context(
            cafile=None if self.tls_cafile is None else str(self.tls_cafile)
        )

    @property
    def scheme(self) -> str:
        return "https" if self.tls_certfile is not None else "http"

    def tokens(self) -> list[bytes]:
        """The accepted bearer tokens (none: the data endpoints are open)."""
        if self.auth_token_file is None:
            return []
        lines = self.auth_token_file.read_text().splitlines()
        return [line.strip().encode() for line in lines if line.strip()]


class RocksDBSettings(Section):
    """The table store's RocksDB databases (store = "rocksdb://"), one per partition this
    worker holds. Faust's defaults (a 2 GiB block cache and 3 x 64 MiB write buffers per
    database) would let eight partitions claim far more memory than the states need."""

    block_cache_mb: Annotated[int, Field(ge=1, le=65536)] = 64
    write_buffer_mb: Annotated[int, Field(ge=1, le=4096)] = 16
    max_write_buffers: Annotated[int, Field(ge=2, le=16)] = 2

    def table_options(self) -> dict[str, Any]:
        """Options for Faust's RocksDB store (faust.stores.rocksdb.RocksDBOptions)."""
        mib = 1024 * 1024
        return {
            "driver": "rocksdict",
            "block_cache_size": self.block_cache_mb * mib,
            "write_buffer_size": self.write_buffer_mb * mib,
            "max_write_buffer_number": self.max_write_buffers,
        }


class Settings(BaseSettings):
    """All of vipstream's configuration. Units are in the key names."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        validate_default=True,
    )

    app_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,100}$")] = "vipstream"
    #: kafka://host:port, several separated by ';' or ','.
    broker: str = "kafka://127.0.0.1:9092"
    #: Table store. memory://: state is rebuilt from the changelog topic at every start.
    #: rocksdb://: kept on disk under `datadir`, so a restart reads only the changelog
    #: written since (production).
    store: Literal["memory://", "rocksdb://"] = "memory://"
    datadir: Path = Path("vipstream-data")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: text: one readable line per record; json: one JSON object per line, with the
    #: notable events' names and figures as fields (for log collectors).
    log_format: Literal["text", "json"] = "text"
    #: at_least_once: after a crash the outputs since the last commit are sent again (same
    #: event ids; figures stay exact). exactly_once: each commit's outputs, state writes
    #: and input offsets are one Kafka transaction per input partition (Apache Kafka
    #: only; consumers of the outputs read with isolation.level=read_committed).
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    #: Decoded customer states kept in memory per worker (the rest are decoded on demand).
    state_cache_customers: Annotated[int, Field(ge=100, le=50_000_000)] = 200_000
    #: A partition's value ledger is saved beside its states at most this long after a
    #: change (sooner once 5 % of its customers changed), so a start reads the save and the
    #: customers changed since instead of every state (agents/engine/checkpoint.py).
    checkpoint_interval_seconds: Annotated[float, Field(gt=0, le=86_400)] = 60.0
    #: Something synchronous that holds the worker's event loop this long is logged
    #: (`event_loop_stalled`, with where it was held; at most a line per 10 s). Every
    #: stall is in the `vipstream_event_loop_stall_seconds` histogram.
    stall_log_seconds: Annotated[float, Field(gt=0, le=600)] = 0.5
    #: After each full garbage collection, and after a ledger is built (which decodes
    #: states by the thousand), move the live objects out of the collector's sight
    #: (gc.freeze), so the next full collection scans only what became long-lived since:
    #: full collections over every decoded state held the event loop for seconds at 100k
    #: customers. The cost: a reference cycle among objects frozen alive that dies later
    #: is never collected (the resident memory per customer shows whether that adds up).
    gc_freeze: bool = True

    topics: TopicSettings = TopicSettings()
    kafka: KafkaSettings = KafkaSettings()
    web: WebSettings = WebSettings()
    rocksdb: RocksDBSettings = RocksDBSettings()
    ingest: IngestSettings = IngestSettings()
    cost: CostSettings = CostSettings()
    value: ValueSettings = ValueSettings()
    clv: ClvSettings = ClvSettings()
    prediction: PredictionSettings = PredictionSettings()
    tiering: TieringSettings = TieringSettings()
    spikes: SpikeSettings = SpikeSettings()
    care: CareSettings = CareSettings()
    tickets: TicketSettings = TicketSettings()

    @field_validator("broker")
    @classmethod
    def _broker_urls(cls, value: str) -> str:
        broker_servers(value)
        return value

    @model_validator(mode="after")
    def _largest_state_fits(self) -> Settings:
        largest = max_state_bytes(self.ingest, self.spikes, self.care)
        if largest > self.kafka.max_message_bytes:
            raise ValueError(
                f"a customer's state may reach {largest:,} bytes with "
                f"ingest.dedupe_max_ids_per_customer={self.ingest.dedupe_max_ids_per_customer}"
                f", above kafka.max_message_bytes={self.kafka.max_message_bytes:,}: lower the "
                "first or raise the second"
            )
        return self

    def dump(self) -> dict[str, Any]:
        """Every effective setting as JSON values, for `vipstream config` and the worker's
        start-up log: secrets (SecretStr) as `**********`, secret files by their path."""
        return self.model_dump(mode="json")

    @model_validator(mode="after")
    def _churn_rule_has_its_model(self) -> Settings:
        if self.care.churn_rule == "model" and not self.prediction.enabled:
            raise ValueError(
                'care.churn_rule = "model" needs prediction.enabled = true '
                '(or care.churn_rule = "stages")'
            )
        return self

    @property
    def bootstrap_servers(self) -> list[str]:
        """host:port of every broker, for aiokafka clients."""
        return broker_servers(self.broker)

    @property
    def advertised_host(self) -> str:
        return self.web.advertised_host or socket.gethostname()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get(CONFIG_ENV)
        if path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def broker_servers(url: str) -> list[str]:
    """'kafka://a:9092;kafka://b:9092' -> ['a:9092', 'b:9092'] (port defaults to 9092)."""
    servers = []
    for raw in url.replace(",", ";").split(";"):
        part = raw.strip()
        if not part:
            continue
        scheme, sep, rest = part.partition("://")
        if not sep or scheme != "kafka":
            raise ValueError(f"{part!r} is not a kafka://host:port URL")
        host, _, port = rest.rstrip("/").partition(":")
        if not host or (port and not port.isdigit()):
            raise ValueError(f"{part!r} is not a kafka://host:port URL")
        servers.append(f"{host}:{port or 9092}")
    if not servers:
        raise ValueError("no broker URL given")
    return servers


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read and validate the configuration; raise ConfigError naming each bad key."""
    env = os.environ
    path = env.get(CONFIG_ENV)
    if path and not Path(path).is_file():
        raise ConfigError(f"{CONFIG_ENV}={path!r}: no such file")
    unknown = sorted(
        name
        for name in env
        if name.startswith(ENV_PREFIX) and name not in _NOT_SETTINGS and not _is_known(name)
    )
    if unknown:
        raise ConfigError(
            "unknown configuration variable(s): "
            + ", ".join(unknown)
            + f" (keys are {ENV_PREFIX}<KEY>, nested keys joined by '__')"
        )
    try:
        return Settings(**dict(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path)) from None
    except (OSError, ValueError) as exc:  # e.g. a TOML syntax error
        raise ConfigError(f"cannot read configuration {path!r}: {exc}") from None


def _is_known(env_name: str) -> bool:
    path = env_name[len(ENV_PREFIX) :].lower().split("__")
    model: Any = Settings
    for i, part in enumerate(path):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return False
        annotation = fields[part].annotation
        if i == len(path) - 1:
            return True
        model = annotation
        if not (isinstance(model, type) and issubclass(model, Section)):
            # a mapping such as cost.channel_rate_per_minute takes one more level
            return i == len(path) - 2 and "dict" in str(annotation)
    return False


def _explain(exc: ValidationError, path: str | None) -> str:
    lines = ["invalid configuration:"]
    for error in exc.errors(include_url=False):
        if not error["loc"]:  # a rule across sections: its message names the keys
            lines.append(f"  {error['msg'].removeprefix('Value error, ')}  [file {path or '-'}]")
            continue
        key = ".".join(str(p) for p in error["loc"])
        env_name = ENV_PREFIX + "__".join(str(p) for p in error["loc"]).upper()
        shown = error.get("input")
        got = "" if isinstance(shown, dict) else f" (got {shown!r})"
        lines.append(f"  {key}: {error['msg']}{got}  [env {env_name}; file {path or '-'}]")
    return "\n".join(lines)
