"""HTTP views on each worker (CONTRACT.md section 4)."""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from pydantic import TypeAdapter, ValidationError

from agents.engine.population import GlobalDay
from agents.engine.store import CustomerStore
from agents.engine.value import ValueEngine
from agents.metrics import CONTENT_TYPE, Metrics
from agents.settings import Settings, WebSettings
from agents.worker.dashboard import (
    CustomerView,
    DashboardFigures,
    render_customer,
    render_dashboard,
    render_unknown_customer,
    render_waiting,
)
from agents.worker.health import Health
from schemas.base import Identifier
from schemas.care_config import CARE_KINDS
from schemas.http import openapi
from streams.customer import CustomerState
from streams.ledger import SPIKE, TIER_CHANGE, care_task_counts
from streams.report import (
    alive_over_time,
    customer_figures,
    monthly_figures,
    population_report,
    timeline,
)
from streams.tiers import SCORE_LABEL
from streams.units import MICROS_PER_DAY, from_micros
from streams.value import expected_lifetime_years

log = logging.getLogger(__name__)

_NO_DAY_YET = "tiers appear once every partition has closed its first day"


def _json(web: Any, body: Any, status: int = 200) -> Any:
    return web.bytes(orjson.dumps(body), content_type="application/json", status=status)


def register_views(
    app: Any,
    *,
    table: Any,
    store: CustomerStore,
    metrics: Metrics,
    health: Health,
    settings: Settings,
    engine: ValueEngine,
) -> None:
    """Attach /healthz, /metrics, /tiers, /dashboard, /customers/{customer_id} and
    /openapi.json (schemas/http.py) to the web server."""

    @app.page("/healthz")  # type: ignore[untyped-decorator]
    async def healthz(web: Any, request: Any) -> Any:
        report = health.report()
        return _json(
            web, {"status": report.status, "detail": report.detail}, 200 if report.ok else 503
        )

    guard = _bearer_guard(settings.web.tokens())
    if not settings.web.tokens() and settings.web.host not in ("127.0.0.1", "::1", "localhost"):
        log.warning(
            "customer data (/customers, /tiers, /dashboard) is served without "
            "authentication on %s:%d: set web.auth_token_file",
            settings.web.host,
            settings.web.port,
            extra={"event": "web_unauthenticated"},
        )
    metrics_guard = guard if settings.web.metrics_auth else _open

    @app.page("/metrics")  # type: ignore[untyped-decorator]
    @metrics_guard
    async def prometheus_metrics(web: Any, request: Any) -> Any:
        return web.bytes(metrics.render(), content_type=CONTENT_TYPE.split(";")[0])

    document = orjson.dumps(openapi())

    @app.page("/openapi.json")  # type: ignore[untyped-decorator]
    async def openapi_document(web: Any, request: Any) -> Any:
        return web.bytes(document, content_type="application/json")

    def figures_of(state: CustomerState, customer_id: str) -> dict[str, Any]:
        return customer_body(state, customer_id.encode(), engine, settings)

    @app.page("/customers/{customer_id}")  # type: ignore[untyped-decorator]
    @guard
    @_customer_id_checked
    @_owner_unreachable_is_503
    @app.table_route(table=table, match_info="customer_id")  # type: ignore[untyped-decorator]
    async def customer(web: Any, request: Any, customer_id: str) -> Any:
        # table_route has forwarded the request to the worker owning this customer.
        if not app.tables.actives_ready:
            return _json(web, {"error": "recovering", "customer_id": customer_id}, 503)
        state = store.get(customer_id.encode())
        if state is None:
            return _json(web, {"error": "unknown customer", "customer_id": customer_id}, 404)
        return _json(web, figures_of(state, customer_id))

    @app.page("/dashboard/customers")  # type: ignore[untyped-decorator]
    @guard
    async def customer_search(web: Any, request: Any) -> Any:
        """The dashboard's search box: to the customer's page."""
        wanted = request.query.get("id", "")
        refused = _invalid_customer_id(web, wanted)
        if refused is not None:
            return refused
        response = web.bytes(b"", content_type="text/plain", status=302)
        response.headers["Location"] = "/dashboard/customers/" + quote(wanted, safe="")
        return response

    @app.page("/dashboard/customers/{customer_id}")  # type: ignore[untyped-decorator]
    @guard
    @_customer_id_checked
    @_owner_unreachable_is_503
    @app.table_route(table=table, match_info="customer_id")  # type: ignore[untyped-decorator]
    async def customer_page(web: Any, request: Any, customer_id: str) -> Any:
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if not app.tables.actives_ready:
            return _html(web, render_waiting(now, "this worker is rebuilding its state"), 503)
        state = store.get(customer_id.encode())
        if state is None:
            return _html(web, render_unknown_customer(customer_id, now), 404)
        model = engine.population_model()
        current = engine.current_day(state)
        view = CustomerView(
            customer_id=customer_id,
            figures=figures_of(state, customer_id),
            months=monthly_figures(state),
            alive=[] if model is None else alive_over_time(state, model, current),
            timeline=timeline(state),
            rendered_at=now,
        )
        return _html(web, render_customer(view))

    @app.page("/tiers")  # type: ignore[untyped-decorator]
    @guard
    async def tiers(web: Any, request: Any) -> Any:
        latest = engine.latest_day()
        if latest is None:
            return _json(
                web,
                {
                    "error": "no day closed yet",
                    "detail": _NO_DAY_YET,
                },
                503,
            )
        return _json(web, tiers_body(latest, engine, settings))

    @app.page("/dashboard")  # type: ignore[untyped-decorator]
    @guard
    async def dashboard(web: Any, request: Any) -> Any:
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        latest = engine.latest_day()
        if latest is None:
            return _html(web, render_waiting(now, _NO_DAY_YET), 503)
        figures = dashboard_figures(latest, engine, settings.value.score, now)
        return _html(web, render_dashboard(figures))


def customer_body(
    state: CustomerState, key: bytes, engine: ValueEngine, settings: Settings
) -> dict[str, Any]:
    """GET /customers/{id}'s body: the customer's figures as this worker knows them."""
    latest = engine.latest_day()
    lifetime = (
        latest.lifetime_years if latest is not None else expected_lifetime_years(settings.clv, None)
    )
    return customer_figures(
        state,
        current_day=engine.current_day(state),
        tiered_day=engine.tiered_day(key),
        rules=engine.rules,
        lifetime_years=lifetime,
        cuts=None if latest is None else latest.cuts,
        model=engine.population_model(),
    )


def tiers_body(latest: GlobalDay, engine: ValueEngine, settings: Settings) -> dict[str, Any]:
    """GET /tiers' body: the latest merged day, the tier counts and the model."""
    return population_report(
        latest.cuts,
        counts=engine.tier_counts(),
        score_kind=settings.value.score,
        churned_share=latest.churned_share,
        lifetime_years=latest.lifetime_years,
        model=latest.model,
        model_pending=latest.model_pending,
    )


View = Callable[..., Awaitable[Any]]


def routing_client(web_settings: WebSettings) -> type[aiohttp.ClientSession]:
    """The HTTP client class Faust forwards a customer request to its owner with: with
    TLS on, it verifies the owner's certificate against web.tls_cafile (the request keeps
    its https scheme and its Authorization header)."""
    context = web_settings.client_ssl_context()

    class RoutingClient(aiohttp.ClientSession):
        def __init__(self, **kwargs: Any) -> None:
            if context is not None:
                kwargs.setdefault("connector", aiohttp.TCPConnector(ssl=context))
            super().__init__(**kwargs)

    return RoutingClient


def _open(view: View) -> View:
    return view


def _bearer_guard(tokens: list[bytes]) -> Callable[[View], View]:
    """A view decorator: 401 unless the request carries one of `tokens` as its bearer
    token (every token compared in constant time); no guard when there are none. A
    request forwarded to the customer's owner keeps its headers, so the owner checks
    the same token."""
    if not tokens:
        return _open

    def accepts(header: str) -> bool:
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        candidate = given.strip().encode()
        found = False
        for token in tokens:
            found |= hmac.compare_digest(candidate, token)
        return found

    def decorate(view: View) -> View:
        @functools.wraps(view)
        async def guarded(web: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            if not accepts(request.headers.get("Authorization", "")):
                response = _json(
                    web, {"error": "unauthorized", "detail": "a bearer token is required"}, 401
                )
                response.headers["WWW-Authenticate"] = 'Bearer realm="vipstream"'
                return response
            return await view(web, request, *args, **kwargs)

        return guarded

    return decorate


_CUSTOMER_ID: TypeAdapter[str] = TypeAdapter(Identifier)


def _customer_id_checked(route: View) -> View:
    """400 for a path that cannot name a customer (the rule the input events' ids follow:
    1 to 256 characters, no control characters), before it is routed anywhere."""

    @functools.wraps(route)
    async def checked(web: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        refused = _invalid_customer_id(web, request.match_info.get("customer_id", ""))
        if refused is not None:
            return refused
        return await route(web, request, *args, **kwargs)

    return checked


def _invalid_customer_id(web: Any, customer_id: str) -> Any | None:
    """The 400 answer for text that cannot be a customer id, else None."""
    try:
        _CUSTOMER_ID.validate_python(customer_id)
    except ValidationError:
        body = {
            "error": "invalid_customer_id",
            "detail": "a customer id has 1 to 256 characters and no control characters",
        }
        return _json(web, body, 400)
    return None


def _owner_unreachable_is_503(route: Any) -> Any:
    """Faust forwards a request for a customer to the worker that owns it, and answers
    500 with a stack-trace page when that worker cannot be reached (it died, or a
    rebalance is moving its partitions): a 503 the client may retry, instead."""

    @functools.wraps(route)
    async def routed(view: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await route(view, request, *args, **kwargs)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("the owner of a customer could not be reached: %r", exc)
            body = {
                "error": "owner_unreachable",
                "detail": "the worker owning this customer "
                "did not answer (a rebalance, or it stopped); retry shortly",
            }
            return _json(view, body, 503)

    return routed


def _html(web: Any, page: str, status: int = 200) -> Any:
    return web.html(page, status=status)  # text/html; charset=utf-8


def dashboard_figures(
    latest: GlobalDay, engine: ValueEngine, score_kind: str, rendered_at: str
) -> DashboardFigures:
    """The whole-system figures of the dashboard: the latest merged day's cuts and
    histogram, and the counts every partition published on the summaries bus."""
    cuts = latest.cuts
    counts_day, counts = engine.tier_counts()
    emitted = engine.emitted_counts()
    by_kind = care_task_counts(emitted)
    care = {kind: by_kind.pop(kind, 0) for kind in CARE_KINDS} | by_kind
    return DashboardFigures(
        closed_day=_day_text(cuts.day),
        counts_day=None if counts_day is None else _day_text(counts_day),
        mode=cuts.mode,
        score_label=SCORE_LABEL.get(score_kind, score_kind),
        population=cuts.population,
        tier_counts=counts,
        cut_scores=dict(cuts.entry_score),
        histogram=cuts.ranks.histogram(),
        tier_changes=emitted.get(TIER_CHANGE, 0),
        spikes=emitted.get(SPIKE, 0),
        care_tasks=care,
        rendered_at=rendered_at,
    )


def _day_text(day: int) -> str:
    return from_micros(day * MICROS_PER_DAY).strftime("%Y-%m-%d")
