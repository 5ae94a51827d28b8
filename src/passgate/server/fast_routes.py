"""The hottest Server API routes without FastAPI's dependency solving.

Every backend sign-in passes through track and validate. FastAPI answers each request by
solving the route's dependency graph (the path parameters, the body model, the secret key,
the unit of work, the push hub) and validating the returned model against the response
model: about a hundred microseconds of Python per request, as much as the rest of a track
costs on SQLite (docs/performance.md). Here the same work is written out by hand for
requests that are well formed: the same pydantic models and path constraints check the
input, the same functions do the work (`server_api.actions.tracked`,
`server_api.validate.validated`), the same unit of work commits, and the answer is the
response model's JSON, as FastAPI would write it.

Anything else (a body that is not a JSON object, one the model refuses, a path parameter out
of bounds, a content type that is not JSON) is handed, untouched, to the FastAPI route
itself, which answers it as it always has: the error responses are FastAPI's, and the
OpenAPI document, built from the FastAPI routes, is unchanged. Errors raised while doing
the work (401, 404, 429, ...) go through the app's exception handlers like any route's.
tests/server/test_fast_routes.py checks both answer the same."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

from passgate.server.database import unit_of_work
from passgate.server.schemas import TrackAttributes, ValidateRequest
from passgate.server.server_api.actions import tracked
from passgate.server.server_api.auth import request_secret_key
from passgate.server.server_api.paths import ActionCode, UserId
from passgate.server.server_api.validate import validated

# None: the request is not one this module answers; the FastAPI route does.
Handler = Callable[[Request, bytes], Awaitable[BaseModel | None]]

_USER_ID: TypeAdapter[str] = TypeAdapter(UserId)
_ACTION_CODE: TypeAdapter[str] = TypeAdapter(ActionCode)


def _json_object(request: Request, body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None when FastAPI should have the request: a content
    type other than JSON, or a body that is not one JSON object."""
    content_type = request.headers.get("content-type", "")
    if content_type.partition(";")[0].strip().lower() != "application/json":
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
        return None
    return data if isinstance(data, dict) else None


def _model(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except (ValidationError, RecursionError):
        return None


def _path_parameter(adapter: TypeAdapter[str], value: Any) -> str | None:
    try:
        return adapter.validate_python(value)
    except ValidationError:
        return None


async def _track(request: Request, body: bytes) -> BaseModel | None:
    params = request.path_params
    user_id = _path_parameter(_USER_ID, params.get("userId"))
    action_code = _path_parameter(_ACTION_CODE, params.get("action"))
    if user_id is None or action_code is None:
        return None
    attributes = None
    if body:
        data = _json_object(request, body)
        attributes = None if data is None else _model(TrackAttributes, data)
        if attributes is None:
            return None
    key = request_secret_key(request)
    hub = request.app.state.push_hub
    async with unit_of_work(request) as db:
        return await tracked(request, db, key, hub, user_id, action_code, attributes)


async def _validate(request: Request, body: bytes) -> BaseModel | None:
    data = _json_object(request, body)
    parsed = None if data is None else _model(ValidateRequest, data)
    if parsed is None:
        return None
    key = request_secret_key(request)
    async with unit_of_work(request) as db:
        return await validated(db, key, parsed)


# (method, path as the FastAPI route declares it) -> handler
HANDLERS: dict[tuple[str, str], Handler] = {
    ("POST", "/v1/users/{userId}/actions/{action}"): _track,
    ("POST", "/v1/validate"): _validate,
}


# Set on a request handed over, so the fast route does not match it again.
_HANDED_OVER = "passgate.handed_over"


class FastRoute(Route):
    """A route matched before FastAPI's routers; a request it hands over goes through the
    app's router again, where it matches no fast route and reaches the FastAPI route."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get(_HANDED_OVER):
            return Match.NONE, {}
        return super().matches(scope)


class _Endpoint:
    """The ASGI app of one fast route: answer, or hand the request to the FastAPI route."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        answer = await self.handler(request, body)
        if answer is None:
            scope[_HANDED_OVER] = True
            await scope["app"].router(scope, _replay(body), send)
            return
        content = answer.model_dump_json(by_alias=True, exclude_none=True)
        await Response(content, media_type="application/json")(scope, receive, send)


def _replay(body: bytes) -> Receive:
    """A `receive` that gives the body already read, then waits for the disconnect."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def install(app: FastAPI, *, after: str = "/health") -> None:
    """Put the fast routes in front of FastAPI's routers (matched right after the route at
    `after`); the FastAPI routes stay, for what the fast ones hand over and for the OpenAPI
    document."""
    fast = [
        FastRoute(path, _Endpoint(handler), methods=[method], include_in_schema=False)
        for (method, path), handler in HANDLERS.items()
    ]
    routes = app.router.routes
    position = next(
        (index + 1 for index, route in enumerate(routes) if getattr(route, "path", None) == after),
        0,
    )
    routes[position:position] = fast
