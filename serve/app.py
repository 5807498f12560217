"""The storefront HTTP service (FastAPI on uvicorn), talking to vLLM with the `openai` client.

    SHOPTUNE_API_KEY=secret shoptune serve app --config configs/cpu-smollm2.yaml --llm http://127.0.0.1:8000/v1

Endpoints (all but /healthz need the API key, as `Authorization: Bearer KEY` or `X-API-Key: KEY`):
  POST /v1/chat {session_id, message, customer_id?}  multi-turn, history per session, catalogue +
                                       policy grounding, the customer's orders from the order system
  POST /v1/extract {text, schema}      a JSON object valid against the schema, or an error, never invalid JSON
  GET  /v1/schemas                     the shop's extraction schemas (what /v1/extract accepts)
  POST /v1/recommend {query}           matching in-stock products and a grounded answer
  GET  /healthz                        liveness (no key)
  GET  /metrics                        Prometheus: requests, latency, tokens, errors by endpoint
Every response carries X-Request-ID. The model being down gives 503 with Retry-After.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid
from typing import Annotated, Any

import openai
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware

from shoptune.serve.masking import mask
from shoptune.serve.storefront import ModelOutputInvalid, Storefront, product_json
from shoptune.shop.prompts import detect_language

logger = logging.getLogger("shoptune.storefront")
SESSION_ID = r"^[A-Za-z0-9_.:-]{1,128}$"


def _encodable(text: str) -> str:
    """JSON may carry lone surrogates ("\\ud800") that no UTF-8 store, log or tokenizer accepts."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains a lone surrogate (not valid Unicode text)") from None
    return text


Text = Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(_encodable)]


class ChatRequest(BaseModel):
    session_id: str = Field(pattern=SESSION_ID, description="Opaque id of the shopper's conversation.")
    message: Text
    customer_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="The signed-in shopper, set by the shop's backend (which holds the API key), never by the "
        "shopper: the chat answers questions about this customer's orders only.",
    )


class ExtractRequest(BaseModel):
    text: Text
    schema_name: str = Field(
        alias="schema", min_length=1, max_length=128, description="One of the shop's schemas (GET /v1/schemas)."
    )

    model_config = {"populate_by_name": True}


class RecommendRequest(BaseModel):
    query: Text


class ErrorBody(BaseModel):
    error: str
    request_id: str


class Metrics:
    """Prometheus instruments in a private registry (one per app, so tests can build several)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "storefront_requests_total",
            "Requests by endpoint and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "storefront_request_seconds",
            "Request latency by endpoint",
            ["endpoint"],
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
        )
        self.errors = Counter(
            "storefront_errors_total", "Errors by endpoint and kind", ["endpoint", "kind"], registry=self.registry
        )
        self.tokens = Counter(
            "storefront_reply_characters_total",
            "Characters of model replies by endpoint",
            ["endpoint"],
            registry=self.registry,
        )


class RequestContext(BaseHTTPMiddleware):
    """Request id, body size limit, latency/metrics and one masked JSON log line per request."""

    def __init__(self, app: Any, *, metrics: Metrics, max_body_bytes: int) -> None:
        super().__init__(app)
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def dispatch(self, request: Request, call_next: Any) -> Response:
        incoming = request.headers.get("x-request-id", "")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.replace("-", "").isalnum() else uuid.uuid4().hex
        request.state.request_id = request_id
        endpoint = request.url.path
        if endpoint.startswith("/v1/sessions/"):
            endpoint = "/v1/sessions/{session_id}"  # one metrics label, not one per shopper
        started = time.perf_counter()
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            response: Response = _error(413, f"request body over {self.max_body_bytes} bytes", request_id)
        else:
            body = await request.body()
            if len(body) > self.max_body_bytes:
                response = _error(413, f"request body over {self.max_body_bytes} bytes", request_id)
            else:
                response = await call_next(request)
        elapsed = time.perf_counter() - started
        response.headers["X-Request-ID"] = request_id
        if endpoint in {
            "/v1/chat",
            "/v1/extract",
            "/v1/recommend",
            "/healthz",
            "/metrics",
            "/v1/sessions/{session_id}",
        }:
            self.metrics.requests.labels(endpoint, str(response.status_code)).inc()
            self.metrics.latency.labels(endpoint).observe(elapsed)
        logger.info(
            json.dumps(
                {
                    "request_id": request_id,
                    "method": request.method,
                    "path": endpoint,
                    "status": response.status_code,
                    "ms": round(elapsed * 1000, 1),
                }
            )
        )
        return response


def _error(status: int, message: str, request_id: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "request_id": request_id}, status_code=status, headers=headers)


class ProductCard(BaseModel):
    sku: str
    name: str
    price: int | float
    in_stock: bool
    stock: int
    colors: list[str]
    sizes: list[str]


class ChatResponse(BaseModel):
    session_id: str
    reply: str
    request_id: str
    products: list[ProductCard] = Field(description="The catalogue products the reply was grounded on.")
    policy_topics: list[str] = Field(description="Ids of the policy topics the reply was grounded on.")
    order_id: str | None = Field(
        None,
        description="The order number the message asked about, answered from the order system (the same answer "
        "for another customer's order as for none); null when the message names no order.",
    )


class SessionResponse(BaseModel):
    session_id: str
    turns: list[dict[str, str]] = Field(description="The stored turns, oldest first, as /v1/chat sends them.")
    request_id: str


class ExtractResponse(BaseModel):
    schema_name: str = Field(serialization_alias="schema")
    data: dict[str, Any] = Field(description="An object valid against the schema.")
    request_id: str


class SchemaInfo(BaseModel):
    name: str = Field(description="What /v1/extract takes as `schema`.")
    description: str
    fields: dict[str, str] = Field(description="Each field of the object and its description.")
    json_schema: dict[str, Any] = Field(description="The JSON Schema (draft 2020-12) the answer is valid against.")


class SchemasResponse(BaseModel):
    schemas: list[SchemaInfo]
    request_id: str


def schema_info(name: str, schema: dict[str, Any]) -> SchemaInfo:
    properties = schema["properties"].items()
    fields = {key: str(spec.get("description", "")) if isinstance(spec, dict) else "" for key, spec in properties}
    return SchemaInfo(name=name, description=str(schema.get("description", "")), fields=fields, json_schema=schema)


class RecommendResponse(BaseModel):
    products: list[ProductCard] = Field(description="In-stock products matching the extracted filters.")
    answer: str
    filters: dict[str, Any] = Field(description="The product_query object extracted from the query.")
    request_id: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (401, 413, 422, 502, 503, 504)
}


def _log_masked(fields: dict[str, Any]) -> None:
    """One JSON log line, with order ids, phone numbers and e-mail addresses masked."""
    logger.info(mask(json.dumps(fields, ensure_ascii=False)))


def api_key_check(api_key: str):
    """A dependency that accepts `Authorization: Bearer KEY` or `X-API-Key: KEY`, compared in constant time."""

    def require_key(request: Request) -> None:
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise _Unauthorized

    return require_key


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    """Every error in one JSON shape (`ErrorBody`), with the model's failures mapped to 503/504/422/502."""

    @app.exception_handler(_Unauthorized)
    async def unauthorized(request: Request, _: Exception) -> JSONResponse:
        return _error(401, "missing or wrong API key", request.state.request_id, {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own 400/404/405 (an undecodable body, an unknown path) in the same shape as ours.
        return _error(exc.status_code, str(exc.detail), request.state.request_id, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors())
        return _error(422, f"invalid request: {problems}", request.state.request_id)

    # Model failures get handlers of their own class: Starlette routes `Exception` handlers through
    # its outermost error middleware, which re-raises after answering, and a response behind our
    # BaseHTTPMiddleware is then lost (the shopper sees a reset connection instead of a 503).
    @app.exception_handler(openai.APIError)
    async def model_failure(request: Request, exc: openai.APIError) -> JSONResponse:
        endpoint, request_id = request.url.path, getattr(request.state, "request_id", "-")
        if isinstance(exc, openai.APITimeoutError):
            metrics.errors.labels(endpoint, "model_timeout").inc()
            return _error(504, "the model took too long to answer", request_id)
        if isinstance(exc, openai.APIConnectionError | openai.InternalServerError):
            metrics.errors.labels(endpoint, "model_unavailable").inc()
            return _error(503, "the model is unavailable; retry shortly", request_id, {"Retry-After": "5"})
        if isinstance(exc, openai.BadRequestError):
            metrics.errors.labels(endpoint, "model_rejected").inc()
            return _error(422, f"the model rejected the request: {exc.message}", request_id)
        metrics.errors.labels(endpoint, "model_error").inc()
        logger.error(mask(f"request {request_id}: model error {exc!r}"))
        return _error(502, "the model answered with an error", request_id)

    @app.exception_handler(ModelOutputInvalid)
    async def invalid_output(request: Request, exc: ModelOutputInvalid) -> JSONResponse:
        metrics.errors.labels(request.url.path, "invalid_model_output").inc()
        return _error(502, str(exc), getattr(request.state, "request_id", "-"))

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", "-")
        metrics.errors.labels(request.url.path, "internal").inc()
        logger.error(mask(f"request {request_id} failed: {exc!r}"))
        return _error(500, "internal error", request_id)


def operations_router(app: FastAPI, storefront: Storefront, metrics: Metrics, require_key: Any) -> APIRouter:
    """Liveness (open), Prometheus metrics and the OpenAPI schema (behind the key)."""
    router = APIRouter()

    @router.get("/openapi.json", dependencies=[Depends(require_key)], include_in_schema=False)
    def openapi_schema() -> dict[str, Any]:
        return app.openapi()

    @router.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "sessions": storefront.store.ping()}

    @router.get("/metrics", dependencies=[Depends(require_key)], responses=ERROR_RESPONSES)
    def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def shopper_router(storefront: Storefront, metrics: Metrics) -> APIRouter:
    """What the shop's site calls: chat, a session's history, extraction, recommendations."""
    router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)

    @router.post("/chat")
    def chat(body: ChatRequest, request: Request) -> ChatResponse:
        result = storefront.chat(body.session_id, body.message, body.customer_id)
        metrics.tokens.labels("/v1/chat").inc(len(result.reply))
        request_id = request.state.request_id
        _log_masked(
            {"request_id": request_id, "session": body.session_id, "message": body.message, "reply": result.reply}
        )
        lang = detect_language(body.message)
        return ChatResponse(
            session_id=body.session_id,
            reply=result.reply,
            request_id=request_id,
            products=[product_json(p, lang) for p in result.products],
            policy_topics=result.policy_topics,
            order_id=result.order_id,
        )

    @router.get("/sessions/{session_id}")
    def session(session_id: str, request: Request) -> SessionResponse:
        """The stored conversation of a session (what /v1/chat will send as history)."""
        if not re.fullmatch(SESSION_ID.strip("^$"), session_id):
            return _error(422, "invalid session id", request.state.request_id)
        return SessionResponse(
            session_id=session_id, turns=storefront.store.history(session_id), request_id=request.state.request_id
        )

    @router.get("/schemas")
    def schemas(request: Request) -> SchemasResponse:
        """The shop's extraction schemas: the names /v1/extract accepts, their fields and JSON Schemas."""
        listed = [schema_info(name, schema) for name, schema in storefront.schemas.items()]
        return SchemasResponse(schemas=listed, request_id=request.state.request_id)

    @router.post("/extract")
    def extract(body: ExtractRequest, request: Request) -> ExtractResponse:
        if body.schema_name not in storefront.schemas:
            known = ", ".join(storefront.schemas)
            unknown = f"invalid request: schema: unknown schema {body.schema_name!r}; known: {known}"
            return _error(422, unknown, request.state.request_id)
        value = storefront.extract(body.text, body.schema_name)
        _log_masked({"request_id": request.state.request_id, "text": body.text, "result": value})
        return ExtractResponse(schema_name=body.schema_name, data=value, request_id=request.state.request_id)

    @router.post("/recommend")
    def recommend(body: RecommendRequest, request: Request) -> RecommendResponse:
        products, answer, extracted = storefront.recommend(body.query)
        metrics.tokens.labels("/v1/recommend").inc(len(answer))
        lang = detect_language(body.query)
        return RecommendResponse(
            products=[product_json(p, lang) for p in products],
            answer=answer,
            filters=extracted,
            request_id=request.state.request_id,
        )

    return router


def create_app(
    storefront: Storefront, *, api_key: str, max_body_bytes: int = 16384, cors_origins: tuple[str, ...] = ()
) -> FastAPI:
    """The storefront's FastAPI app: middleware, error handlers, the operations and shopper routers."""
    if not api_key:
        raise ValueError("the storefront needs an API key")
    metrics = Metrics()
    app = FastAPI(
        title="shoptune storefront",
        version="1.0",
        description="Customer-service Q&A on the tuned model: chat, extraction, recommendations.",
        # The schema and docs pages are served only to callers with the key (below), like the rest.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(RequestContext, metrics=metrics, max_body_bytes=max_body_bytes)
    if cors_origins:  # closed by default: no browser origin may call the API unless configured
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
        )
    install_error_handlers(app, metrics)
    require_key = api_key_check(api_key)
    app.include_router(operations_router(app, storefront, metrics, require_key))
    app.include_router(shopper_router(storefront, metrics), dependencies=[Depends(require_key)])
    return app


class _Unauthorized(Exception):
    pass
