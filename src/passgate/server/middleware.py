"""Pure-ASGI middleware: cheap checks that run before routing and parsing."""

from __future__ import annotations

from urllib.parse import quote, unquote_to_bytes

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from passgate.server.errors import error_response


class RefuseUnreadableUrl:
    """Refuse with 400, before any route sees it, a URL whose path or query is not text we
    can store and compare: percent-encoded bytes that are not UTF-8 (Starlette would turn
    `a%FFb` and `a%FEb` into the same `a\ufffdb`, one user id for two), or a NUL character
    (never meaningful here, and PostgreSQL cannot store one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # Servers without `raw_path` give the decoded path: encode it back to check it.
            raw_path = scope.get("raw_path") or quote(scope["path"], errors="surrogateescape")
            problem = url_problem(raw_path, scope["query_string"])
            if problem:
                await error_response(400, "invalid_request", problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def url_problem(raw_path: bytes | str, query_string: bytes) -> str | None:
    """Why a request's raw path or query string cannot be read as text, else None."""
    for part, name in ((raw_path, "path"), (query_string, "query")):
        try:
            text = unquote_to_bytes(part).decode("utf-8")
        except UnicodeDecodeError:
            return f"The URL's {name} is not valid percent-encoded UTF-8."
        if "\x00" in text:
            return "The URL may not contain NUL characters."
    return None


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
