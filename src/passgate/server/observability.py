"""Logs (structlog) and metrics (Prometheus at `/metrics`), set up once per process or app.

Metrics add up across worker processes when `PROMETHEUS_MULTIPROC_DIR` is set (`passgate serve
--workers N` sets it): each process writes its figures to files there and /metrics, whichever
process answers, reports the sum (prometheus-client's multiprocess mode). docs/observability.md
lists the metrics."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import weakref
from datetime import UTC, datetime
from typing import IO, Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from passgate.server.forwarded import resolve, trusted_proxies


def configure_logging(*, json_lines: bool, level: int = logging.INFO) -> None:
    """Route structlog and the standard library (uvicorn, SQLAlchemy) through one renderer."""
    renderer = (
        structlog.processors.JSONRenderer()
        if json_lines
        # Colour codes only for a person at a terminal, never into files or journald.
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    global _request_sink
    _request_sink = RequestSink(handler.stream, json_lines=json_lines)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Alembic says which database backend it found on every run; Passgate logs one line of
    # its own when it applies migrations (store/migrate.py).
    logging.getLogger("alembic.runtime.migration").setLevel(max(level, logging.WARNING))


# The push long-poll (the device's GET of its pending challenge): its requests in flight are
# the long-polls waiting.
LONG_POLL_PATH = "/v1/client/user-authenticators/push/challenge"
# Where a request's tenant id goes once it is known (request.state), for its log line.
TENANT_ID = "passgate_tenant_id"


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """Request counts and latencies by route template (not raw path: user ids stay out)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "passgate_http_requests",
            "HTTP requests handled",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "passgate_http_request_duration_seconds",
            "Time to handle an HTTP request",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60),
            registry=self.registry,
        )
        self.long_polls = Gauge(
            "passgate_push_long_polls_waiting",
            "Push long-polls (device GETs of a pending challenge) in progress",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.pool_in_use = Gauge(
            "passgate_db_connections_in_use",
            "Database connections checked out of the pools, summed over live processes",
            registry=self.registry,
            multiprocess_mode="livesum",
        )

    def watch_pools(self, *engines: AsyncEngine) -> None:
        """Count the engines' connections checked out of their pools (each pool once)."""
        seen: set[int] = set()
        for engine in engines:
            pool = engine.sync_engine.pool
            if id(pool) in seen:
                continue
            seen.add(id(pool))
            event.listen(pool, "checkout", lambda *_: self.pool_in_use.inc())
            event.listen(pool, "checkin", lambda *_: self.pool_in_use.dec())

    async def endpoint(self, _request: Request) -> Response:
        """This app's request metrics and the process-wide ones (services/metrics.py, the
        process collector); with PROMETHEUS_MULTIPROC_DIR, every worker's, summed."""
        if multiprocess_dir() is not None:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            body = generate_latest(registry)
        else:
            body = generate_latest(self.registry) + generate_latest(REGISTRY)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


request_log = logging.getLogger("passgate.request")
_request_log = structlog.get_logger("passgate.request")


class MetricsMiddleware:
    """Counts and times every request by route template and, with `log_requests`, logs one
    line for it: method, route template (never the raw path: it carries user ids), status,
    duration, tenant id when the request's auth found one, and client IP. Never headers,
    bodies or query strings, where credentials and tokens travel. A pure ASGI middleware: it
    is on every request's path."""

    def __init__(self, app: ASGIApp, metrics: Metrics, log_requests: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        long_poll = scope["path"] == LONG_POLL_PATH and scope["method"] == "GET"
        if long_poll:
            self.metrics.long_polls.inc()
        try:
            await self.app(scope, receive, record_status)
        finally:
            elapsed = time.perf_counter() - started
            if long_poll:
                self.metrics.long_polls.dec()
            route = route_template(scope)
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            if self.log_requests and request_log.isEnabledFor(logging.INFO):
                log_request(scope, method, route, status, elapsed)


def route_template(scope: Scope) -> str:
    """The matched route's full template (`/v1/users/{userId}`), never the raw path. FastAPI
    keeps included routers apart, so the route object's own path lacks their prefixes: the
    full one is on the routing context it records in the scope."""
    fastapi_scope = scope.get("fastapi")
    if fastapi_scope:
        context = fastapi_scope.get("effective_route_context")
        path = getattr(getattr(context, "starlette_route", None), "path_format", None)
        if isinstance(path, str) and path:
            return path
        path = getattr(context, "path_format", None)
        if isinstance(path, str) and path:
            return path
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path_format", None) or getattr(route, "path", "unmatched"))
    # A plain Starlette route among FastAPI's (server/fast_routes.py, /metrics): the router
    # records only its endpoint; find the route that has it (a few top-level routes, once).
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return "unmatched"
    found = _ENDPOINT_PATHS.get(endpoint)
    if found is None:
        routes = getattr(scope.get("app"), "routes", ())
        found = next(
            (r.path for r in routes if getattr(r, "endpoint", None) is endpoint), "unmatched"
        )
        _ENDPOINT_PATHS[endpoint] = found
    return found


_ENDPOINT_PATHS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def client_ip(scope: Scope) -> str | None:
    """The client's address as the rest of Passgate works it out: the peer, or behind a
    trusted proxy the address it forwarded (server/forwarded.py)."""
    client = scope.get("client")
    peer: str | None = client[0] if client else None
    forwarded = [value.decode("latin-1") for name, value in scope["headers"] if name == FORWARDED]
    settings = getattr(getattr(scope.get("app"), "state", None), "settings", None)
    if not forwarded or settings is None:
        return peer
    return resolve(peer, forwarded, trusted_proxies(settings.forwarded_allow_ips))


FORWARDED = b"x-forwarded-for"


def log_request(scope: Scope, method: str, route: str, status: int, elapsed: float) -> None:
    state = scope.get("state")
    fields: dict[str, Any] = {
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": round(elapsed * 1000, 2),
        "tenant_id": state.get(TENANT_ID) if state else None,
        "client_ip": client_ip(scope),
    }
    level = "error" if status >= 500 else "info"
    if _request_sink is not None:
        _request_sink.write(level, fields)
    else:  # logging not set up by configure_logging: the standard library's way
        (_request_log.error if level == "error" else _request_log.info)("request", **fields)


class RequestSink:
    """Writes request lines straight to the log handler's stream, in the format the handler's
    renderer writes (JSON, or console columns without colour): the general logging path
    (structlog's processors, a LogRecord, the formatter) cost about 100 µs of CPU a line
    under `passgate serve`, this about 35 µs (docs/observability.md#request-log)."""

    def __init__(self, stream: IO[str], *, json_lines: bool) -> None:
        self.stream = stream
        self.json_lines = json_lines

    def write(self, level: str, fields: dict[str, Any]) -> None:
        timestamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        if self.json_lines:
            record = {**fields, "event": "request", "level": level, "timestamp": timestamp}
            line = json.dumps(record)
        else:
            pairs = " ".join(f"{key}={fields[key]}" for key in sorted(fields))
            line = f"{timestamp} [{level:<9}] {'request':<30} {pairs}"
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream loses the line, not the request
            pass


_request_sink: RequestSink | None = None
