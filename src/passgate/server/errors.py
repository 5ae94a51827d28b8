"""One place that renders every failure in Authsignal's error shape:
`{"error", "errorCode", "errorDescription"}` with the right status, never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from passgate.server.services.errors import PassgateError

# The standard library logger: a plain traceback, never local variables (which would include
# request headers, and so secret keys). `passgate serve` routes it through structlog.
log = logging.getLogger("passgate.errors")

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    503: "service_unavailable",
}

# A busy or stalled database is answered 503 with this Retry-After, well within the 2 s an
# Authsignal SDK waits, instead of a late 500 (store/database.py bounds every wait).
RETRY_AFTER_SECONDS = 1
BUSY = "The service is busy; try again in a moment."
# PostgreSQL: query_canceled (statement_timeout), lock_not_available (lock_timeout),
# too_many_connections, cannot_connect_now (starting or shutting down).
_BUSY_SQLSTATES = frozenset({"57014", "55P03", "53300", "57P03"})
# SQLite: SQLITE_BUSY and SQLITE_LOCKED, with any extended code.
_BUSY_SQLITE_CODES = frozenset({5, 6})
_BUSY_SQLITE_MESSAGES = ("database is locked", "database table is locked", "database is busy")


def error_response(status_code: int, error_code: str, description: str) -> JSONResponse:
    body = {"error": error_code, "errorCode": error_code, "errorDescription": description}
    return JSONResponse(body, status_code=status_code)


def _describe_validation(exc: RequestValidationError) -> str:
    problems = []
    for error in exc.errors()[:5]:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        message = error.get("msg", "invalid")
        if error.get("type") == "json_invalid":
            return "The request body is not valid JSON."
        problems.append(f"{location}: {message}" if location else message)
    return "Invalid request: " + "; ".join(problems) + "."


async def _on_domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PassgateError)
    return error_response(exc.status_code, exc.error_code, exc.description)


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, "invalid_request", _describe_validation(exc))


async def _on_http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    description = str(exc.detail)
    if exc.status_code == 404 and description == "Not Found":
        description = "API endpoint not found. Check the base URL and path."
    response = error_response(exc.status_code, code, description)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def database_busy(exc: BaseException) -> bool:
    """Did the database refuse for want of time or capacity, or could it not be reached (503),
    rather than fail (500)? A pool checkout that timed out, a PostgreSQL statement or lock
    timeout, SQLite busy, a connection refused or lost."""
    if isinstance(exc, PoolTimeout | ConnectionError):
        # ConnectionError: the driver could not reach the database (asyncpg raises it bare).
        return True
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    if exc.connection_invalidated or isinstance(orig, ConnectionError):
        return True
    if getattr(orig, "sqlstate", None) in _BUSY_SQLSTATES:
        return True
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in _BUSY_SQLITE_CODES:
        return True
    return str(orig).lower().startswith(_BUSY_SQLITE_MESSAGES)


def unavailable_response() -> JSONResponse:
    response = error_response(503, "service_unavailable", BUSY)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


async def _on_database_error(request: Request, exc: Exception) -> JSONResponse:
    if database_busy(exc):
        # Expected under overload: one line, no traceback.
        log.warning(
            "database busy or unreachable, answered 503: %s %s: %s",
            request.method,
            request.url.path,
            (str(getattr(exc, "orig", None) or exc).splitlines() or [""])[0],
        )
        return unavailable_response()
    return await _on_unexpected(request, exc)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    if database_busy(exc):  # raised outside the routes (a middleware's lookup)
        return await _on_database_error(request, exc)
    log.exception("unhandled error in %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "An unexpected error occurred.")


def install(app: FastAPI) -> None:
    handlers: dict[Any, Any] = {
        PassgateError: _on_domain_error,
        RequestValidationError: _on_validation_error,
        StarletteHTTPException: _on_http_error,
        SQLAlchemyError: _on_database_error,
        Exception: _on_unexpected,
    }
    for exception_class, handler in handlers.items():
        app.add_exception_handler(exception_class, handler)
