"""The HTTP API's bodies and its OpenAPI document (CONTRACT.md section 4).

The views build their bodies as plain dicts (streams/report.py, agents/worker/web.py);
these models describe them, a unit test validates real bodies against them, and the
integration tests fuzz a live worker against the document built here
(`schemas/json/openapi.json`, served at `/openapi.json`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from schemas.base import Identifier
from schemas.outputs import Tier

JudgedTier = Literal["vip", "gold", "silver"]

#: An RFC 3339 instant in UTC, e.g. 2026-03-01T00:00:00Z.
Instant = str


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorBody(Body):
    """Every 4xx/5xx JSON answer: a machine-readable code and a sentence for people."""

    error: str = Field(description="machine-readable reason, e.g. unauthorized")
    detail: str | None = Field(default=None, description="for people")
    customer_id: str | None = None


class Health(Body):
    status: str = Field(description="ok, or why not: recovering, broker_unreachable, ...")
    detail: str | None = None


class ClvInputs(Body):
    purchase_frequency_per_year: float
    average_order_value: float
    annual_gross_profit: float
    annual_service_cost: float
    lifetime_years: float
    annuity_factor: float


class CustomerFigures(Body):
    """GET /customers/{customer_id}: the window (window_days through window_end), the
    lifetime figures and the tier with the score it rests on."""

    customer_id: str
    tier: Tier
    score: float | None = Field(description="the score the tier rests on (None: not judged)")
    score_kind: str
    percentile: float | None = Field(ge=0, le=100)
    tier_as_of: Instant | None
    tier_since: Instant | None
    window_days: int = Field(ge=1)
    window_end: Instant
    revenue: float
    service_cost: float
    ratio: float = Field(description="(revenue - service cost) / max(service cost, floor)")
    net_value: float
    contacts: int = Field(ge=0)
    contacts_by_channel: dict[str, int]
    basic_questions: int = Field(ge=0)
    orders: int = Field(ge=0)
    order_amount: float
    refund_amount: float
    clv: float
    clv_inputs: ClvInputs
    lifetime_revenue: float
    lifetime_service_cost: float
    lifetime_ratio: float
    lifetime_net_value: float
    lifetime_purchases: int = Field(ge=0)
    lifetime_purchase_amount: float
    lifetime_refund_amount: float
    lifetime_contacts: int = Field(ge=0)
    lifetime_basic_questions: int = Field(ge=0)
    first_seen_at: Instant
    last_event_at: Instant
    last_order_at: Instant | None
    do_not_call: bool
    # the population model's predictions (None before its first fit, or for a customer
    # who never bought): streams/predictive.py
    p_alive: float | None = Field(ge=0, le=1, description="P(the customer still buys)")
    expected_purchases_90d: float | None = Field(ge=0)
    expected_purchases_365d: float | None = Field(ge=0)
    expected_order_value: float | None
    predicted_clv: float | None = Field(
        description="discounted expected margin over prediction.horizon_days, less the "
        "customer's own service cost while it is expected to stay"
    )
    repeat_purchases: int | None = Field(ge=0, description="purchase days after the first")
    model_fitted_as_of: Instant | None


class Cut(Body):
    entry: float
    entry_score: float | None
    exit: float
    exit_score: float | None


class HistogramBin(Body):
    score: float
    count: int = Field(ge=0)


class TierCounts(Body):
    vip: int = Field(ge=0)
    gold: int = Field(ge=0)
    silver: int = Field(ge=0)
    bronze: int = Field(ge=0)
    new: int = Field(ge=0)


class PurchaseModelReport(Body):
    variant: Literal["mbgnbd", "bgnbd"]
    r: float
    alpha: float = Field(description="in days")
    a: float
    b: float
    log_likelihood: float
    customers: int = Field(ge=0)


class SpendModelReport(Body):
    p: float
    q: float
    gamma: float
    log_likelihood: float
    customers: int = Field(ge=0)


class ModelReport(Body):
    """The population model in use: fitted on the merged sample of one closed day."""

    fitted_as_of: Instant
    purchases: PurchaseModelReport
    spend: SpendModelReport


class TiersReport(Body):
    """GET /tiers: the latest merged day's cut points, counts per tier and histogram."""

    as_of: Instant
    mode: Literal["percentile", "zscore", "absolute"]
    score: str
    population: int = Field(ge=0)
    cuts: dict[JudgedTier, Cut]
    counts_as_of: Instant | None
    counts: TierCounts
    mean: float | None
    stddev: float | None
    churned_share: float | None
    lifetime_years: float
    histogram: list[HistogramBin]
    model: ModelReport | None
    model_pending: str | None = Field(description="why there is no model yet")


_JSON = "application/json"
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(description: str, model: type[BaseModel]) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref(model)}}}


def _error(description: str) -> dict[str, Any]:
    return _json(description, ErrorBody)


_UNAUTHORIZED = _error("no or a wrong bearer token (only with web.auth_token_file)")
_CUSTOMER_ID = {
    "name": "customer_id",
    "in": "path",
    "required": True,
    "schema": TypeAdapter(Identifier).json_schema(),
    "example": "C0000001",
    "description": (
        "as on the input events: 1 to 256 characters, no control characters (others are "
        "answered 400)"
    ),
}


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every worker's HTTP API."""
    models: list[type[BaseModel]] = [ErrorBody, Health, CustomerFigures, TiersReport]
    components: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    text = {"text/plain": {"schema": {"type": "string"}}}
    html = {"text/html": {"schema": {"type": "string"}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "vipstream worker",
            "version": "1",
            "description": (
                "Every worker serves this API on its web port and answers for every "
                "customer (a request is forwarded to the worker that owns it). With "
                "web.auth_token_file set, the data endpoints need a bearer token; "
                "/healthz and /openapi.json never do, /metrics only with web.metrics_auth."
            ),
        },
        "paths": {
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "200 while the worker consumes; 503 and why not otherwise",
                    "responses": {
                        "200": _json("consuming", Health),
                        "503": _json("recovering, broker unreachable, ...", Health),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus text format",
                    "security": [{}, *_BEARER],
                    "responses": {
                        "200": {"description": "the metrics", "content": text},
                        "401": _UNAUTHORIZED,
                    },
                }
            },
            "/customers/{customer_id}": {
                "get": {
                    "operationId": "customer",
                    "summary": "one customer's value, tier and figures",
                    "security": _BEARER,
                    "parameters": [_CUSTOMER_ID],
                    "responses": {
                        "200": _json("the customer", CustomerFigures),
                        "400": _error("not a customer id (too long, control characters)"),
                        "401": _UNAUTHORIZED,
                        "404": _error("no event of this customer seen"),
                        "503": _error("recovering, or the owning worker did not answer"),
                    },
                }
            },
            "/tiers": {
                "get": {
                    "operationId": "tiers",
                    "summary": "the whole base: cut points, counts per tier, histogram",
                    "security": _BEARER,
                    "responses": {
                        "200": _json("the latest merged day", TiersReport),
                        "401": _UNAUTHORIZED,
                        "503": _error("no day closed yet"),
                    },
                }
            },
            "/dashboard": {
                "get": {
                    "operationId": "dashboard",
                    "summary": "the value pyramid, for people",
                    "security": _BEARER,
                    "responses": {
                        "200": {"description": "the page", "content": html},
                        "401": _UNAUTHORIZED,
                        "503": {"description": "waiting for the first closed day", "content": html},
                    },
                }
            },
            "/dashboard/customers": {
                "get": {
                    "operationId": "customerSearch",
                    "summary": "the dashboard's search box: redirects to the customer's page",
                    "security": _BEARER,
                    "parameters": [{**_CUSTOMER_ID, "name": "id", "in": "query"}],
                    "responses": {
                        "302": {"description": "to /dashboard/customers/{customer_id}"},
                        "400": _error("no id given, or not a customer id"),
                        "401": _UNAUTHORIZED,
                    },
                }
            },
            "/dashboard/customers/{customer_id}": {
                "get": {
                    "operationId": "customerPage",
                    "summary": "one customer's page, for people: value by month, P(alive) "
                    "over time, tier changes, tasks and spikes",
                    "security": _BEARER,
                    "parameters": [_CUSTOMER_ID],
                    "responses": {
                        "200": {"description": "the page", "content": html},
                        "400": _error("not a customer id (too long, control characters)"),
                        "401": _UNAUTHORIZED,
                        "404": {"description": "no event of this customer seen", "content": html},
                        "503": {
                            "description": "recovering, or the owning worker did not answer",
                            "content": {**html, _JSON: {"schema": _ref(ErrorBody)}},
                        },
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "this document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {_JSON: {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "one of the tokens in web.auth_token_file",
                }
            },
        },
    }
