"""How vipstream's Kafka clients authenticate and encrypt: the `[kafka]` security
settings as aiokafka client options (every client the worker and the CLI create takes
them) and as Faust's broker credentials. The password is read here and handed to the
client only; nothing logs it."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context

from agents.settings import KafkaSettings, Settings


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context of SSL/SASL_SSL (None for the others)."""
    if not kafka.security_protocol.endswith("SSL"):
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None,
        certfile=str(kafka.ssl_certfile) if kafka.ssl_certfile else None,
        keyfile=str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None,
    )
    context.check_hostname = kafka.ssl_check_hostname
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for every aiokafka client: bootstrap servers and security."""
    kafka = settings.kafka
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": kafka.security_protocol,
    }
    context = ssl_context(kafka)
    if context is not None:
        options["ssl_context"] = context
    if kafka.security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = kafka.password()
    return options


#: What a client factory takes: aiokafka options from `client_options`, or (tests, tools
#: on a plaintext broker) just the bootstrap servers.
Client = dict[str, Any] | list[str]


def options_of(client: Client) -> dict[str, Any]:
    return {"bootstrap_servers": client} if isinstance(client, list) else dict(client)


class CredentialsRefused(RuntimeError):
    """The brokers refused this client's credentials or certificate: retrying cannot help."""


async def check_credentials(settings: Settings, timeout_seconds: float = 10.0) -> None:
    """Connect to each bootstrap server once, as every client does; CredentialsRefused,
    naming the setting to fix (never the secret), when TLS or SASL is what failed.
    aiokafka logs such a failure and reports it as "unable to bootstrap", like a broker
    that is down, so a worker would wait for ever for a password to change."""
    options = client_options(settings)
    kafka = settings.kafka
    for server in settings.bootstrap_servers:
        host, _, port = server.rpartition(":")
        try:
            async with asyncio.timeout(timeout_seconds):
                conn = await create_conn(
                    host,
                    int(port),
                    request_timeout_ms=int(timeout_seconds * 1000),
                    **{k: v for k, v in options.items() if k != "bootstrap_servers"},
                )
            conn.close()
        except ssl.SSLCertVerificationError as exc:
            raise CredentialsRefused(
                f"the broker {server}'s certificate is not trusted "
                f"({exc.verify_message}): check kafka.ssl_cafile "
                f"({kafka.ssl_cafile or 'the system CAs'}) and kafka.ssl_check_hostname"
            ) from None
        except ssl.SSLError as exc:
            raise CredentialsRefused(
                f"TLS with the broker {server} failed ({exc.reason}): check "
                f"kafka.security_protocol ({kafka.security_protocol}), kafka.ssl_cafile, "
                f"kafka.ssl_certfile and kafka.ssl_keyfile"
            ) from None
        except (SaslAuthenticationFailed, UnsupportedSaslMechanismError, IllegalSaslStateError):
            raise CredentialsRefused(
                f"the broker {server} refused the SASL login of kafka.sasl_username="
                f"{kafka.sasl_username!r} with kafka.sasl_mechanism={kafka.sasl_mechanism}: "
                f"check the user, its password (kafka.sasl_password_file or "
                f"VIPSTREAM_KAFKA__SASL_PASSWORD) and the mechanism"
            ) from None
        except (OSError, TimeoutError, KafkaError):
            continue  # not reachable (yet): the caller retries as for any outage
