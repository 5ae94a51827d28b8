"""Pure-ASGI middleware: cheap checks that run before routing and parsing."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from passgate.server.errors import error_response


class RefuseNulInUrl:
    """A NUL character in the path or query is never meaningful here, and PostgreSQL cannot
    store one: refuse it with 400 before any route sees it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope["path"] or b"%00" in scope["query_string"].lower()
        ):
            response = error_response(
                400, "invalid_request", "The URL may not contain NUL characters."
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodySizeLimit:
    """Refuse request bodies over `max_bytes` with 413 in Authsignal's error shape.

    Starlette's own limiter answers in plain text, which Authsignal's SDKs cannot parse. A
    declared Content-Length is refused before the app runs; a streamed body is counted as it
    is read and stopped with an HTTPException that the app's error handler renders."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name != b"content-length":
                continue
            if not value.isdigit():
                response = error_response(400, "invalid_request", "Malformed Content-Length.")
            elif int(value) > self.max_bytes:
                response = error_response(413, "payload_too_large", self._description)
            else:
                break
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._description)
            return message

        await self.app(scope, limited_receive, send)

    @property
    def _description(self) -> str:
        return f"The request body is larger than {self.max_bytes} bytes."
