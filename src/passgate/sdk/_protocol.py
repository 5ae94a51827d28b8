"""Sans-I/O halves of every call: what to send (headers, auth) and how to read the reply.
The async and sync clients share these; only the I/O differs."""

from __future__ import annotations

import base64
import json
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from passgate._version import __version__
from passgate.sdk._types import AuthsignalResponse, ErrorCode

T = TypeVar("T")

SDK_NAME: Final = "python"


class Region:
    """Authsignal's hosted regions (docs/wire.md#regions). A Passgate server is just another
    base URL."""

    US: Final = "https://api.authsignal.com/v1"
    AU: Final = "https://au.api.authsignal.com/v1"
    EU: Final = "https://eu.api.authsignal.com/v1"
    CA: Final = "https://ca.api.authsignal.com/v1"


DEFAULT_BASE_URL: Final = Region.US


def basic_auth(tenant_id: str) -> str:
    """`Basic base64("<tenantId>:")`, padded standard base64, as the Android SDK sends it."""
    return "Basic " + base64.b64encode(f"{tenant_id}:".encode()).decode()


def bearer_auth(token: str) -> str:
    return f"Bearer {token}"


def default_headers(tenant_id: str) -> dict[str, str]:
    """The identity headers Authsignal's mobile SDKs send, naming this SDK
    (docs/wire.md#sdk-identity-headers)."""
    return {
        "X-Authsignal-SDK": SDK_NAME,
        "X-Authsignal-Version": __version__,
        "X-Authsignal-Tenant-ID": tenant_id,
        "User-Agent": (
            f"PassgatePythonSDK/{__version__} Python/{platform.python_version()} "
            f"({platform.system()})"
        ),
    }


@dataclass(frozen=True, kw_only=True, slots=True)
class ApiRequest:
    """One Client API call: method, path under the base URL, Authorization, body, query."""

    method: str
    path: str
    authorization: str
    body: Mapping[str, Any] | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    # Seconds; None uses the client's timeout. Long-polls need longer.
    timeout: float | None = None


def failed(response: AuthsignalResponse[Any]) -> AuthsignalResponse[T]:
    """The error of one step of a multi-step call, as the whole call's result."""
    return AuthsignalResponse(error=response.error, error_code=response.error_code)


def token_not_set() -> AuthsignalResponse[Any]:
    """The answer of a call that needs the cached token when there is none, as the mobile
    SDKs give it."""
    return AuthsignalResponse(
        error="No token is set: call set_token with the token from your backend's track first.",
        error_code=ErrorCode.TOKEN_NOT_SET,
    )


def error_from_body(status_code: int, body: bytes) -> AuthsignalResponse[Any]:
    """Read an error the way the Android SDK does: message is `errorDescription` or `error`,
    code is `errorCode` or `error`; a 404 with no `error` is a wrong base URL."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("error"):
        message = data.get("errorDescription") or data["error"]
        return AuthsignalResponse(
            error=str(message), error_code=str(data.get("errorCode") or data["error"])
        )
    if status_code == 404:
        return AuthsignalResponse(
            error="API endpoint not found. Ensure your Authsignal base URL is valid.",
            error_code=ErrorCode.API_ERROR,
        )
    return AuthsignalResponse(
        error=f"Unexpected response (HTTP {status_code}).", error_code=ErrorCode.API_ERROR
    )


def parse_response(
    status_code: int, body: bytes, parse: Callable[[dict[str, Any]], T]
) -> AuthsignalResponse[T]:
    """Success is HTTP 200 with a JSON object; anything else is an error
    (docs/wire.md#success-responses)."""
    if status_code != 200:
        return error_from_body(status_code, body)
    try:
        data = json.loads(body)
        return AuthsignalResponse(data=parse(data))
    except (ValueError, TypeError, KeyError) as exc:
        return AuthsignalResponse(
            error=f"Could not read the server's response: {exc}", error_code=ErrorCode.API_ERROR
        )
