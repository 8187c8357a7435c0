"""HTTP views on each worker (CONTRACT.md section 4)."""

from __future__ import annotations

from typing import Any

import orjson

from agents.health import Health
from agents.metrics import CONTENT_TYPE, Metrics
from agents.settings import Settings
from agents.state_store import CustomerStore
from agents.value_engine import ValueEngine
from streams.report import customer_figures, population_report
from streams.value import expected_lifetime_years


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
    """Attach /healthz, /metrics, /tiers and /customers/{customer_id} to the web server."""

    @app.page("/healthz")  # type: ignore[untyped-decorator]
    async def healthz(web: Any, request: Any) -> Any:
        report = health.report()
        return _json(
            web, {"status": report.status, "detail": report.detail}, 200 if report.ok else 503
        )

    @app.page("/metrics")  # type: ignore[untyped-decorator]
    async def prometheus_metrics(web: Any, request: Any) -> Any:
        return web.bytes(metrics.render(), content_type=CONTENT_TYPE.split(";")[0])

    @app.page("/customers/{customer_id}")  # type: ignore[untyped-decorator]
    @app.table_route(table=table, match_info="customer_id")  # type: ignore[untyped-decorator]
    async def customer(web: Any, request: Any, customer_id: str) -> Any:
        # table_route has forwarded the request to the worker owning this customer.
        if not app.tables.actives_ready:
            return _json(web, {"error": "recovering", "customer_id": customer_id}, 503)
        state = store.get(customer_id.encode())
        if state is None:
            return _json(web, {"error": "unknown customer", "customer_id": customer_id}, 404)
        latest = engine.latest_day()
        lifetime = (
            latest.lifetime_years
            if latest is not None
            else expected_lifetime_years(settings.clv, None)
        )
        return _json(
            web,
            customer_figures(
                state,
                current_day=engine.current_day(state),
                tiered_day=engine.tiered_day(customer_id.encode()),
                rules=engine.rules,
                lifetime_years=lifetime,
                cuts=None if latest is None else latest.cuts,
            ),
        )

    @app.page("/tiers")  # type: ignore[untyped-decorator]
    async def tiers(web: Any, request: Any) -> Any:
        latest = engine.latest_day()
        if latest is None:
            return _json(
                web,
                {
                    "error": "no day closed yet",
                    "detail": ("tiers appear once every partition has closed its first day"),
                },
                503,
            )
        return _json(
            web,
            population_report(
                latest.cuts,
                counts=engine.tier_counts(),
                score_kind=settings.value.score,
                churned_share=latest.churned_share,
                lifetime_years=latest.lifetime_years,
            ),
        )
