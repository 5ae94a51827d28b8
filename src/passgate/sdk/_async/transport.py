"""The one place the SDK does HTTP: every namespace calls `ApiTransport.call`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from passgate.sdk._protocol import ApiRequest, default_headers, parse_response
from passgate.sdk._types import AuthsignalResponse, ErrorCode

T = TypeVar("T")


class ApiTransport:
    def __init__(
        self,
        base_url: str,
        tenant_id: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=default_headers(tenant_id),
            transport=transport,
            timeout=timeout,
        )

    async def call(self, request: ApiRequest, parse: Callable[[Any], T]) -> AuthsignalResponse[T]:
        """Send one request; network failures come back as `network_error`, not exceptions."""
        headers = {"Authorization": request.authorization, **request.headers}
        try:
            response = await self._http.request(
                request.method,
                request.path,
                json=request.body,
                params=request.params or None,
                headers=headers,
                timeout=request.timeout
                if request.timeout is not None
                else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            return AuthsignalResponse(
                error=f"Network error: {exc!s} ({type(exc).__name__})",
                error_code=ErrorCode.NETWORK_ERROR,
            )
        return parse_response(response.status_code, response.content, parse)

    async def aclose(self) -> None:
        await self._http.aclose()
