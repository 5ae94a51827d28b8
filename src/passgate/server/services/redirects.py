"""Where the hosted challenge page may send a browser back to.

A track's `redirectUrl` is where the page returns the user with a fresh token in the query,
so it must be a page of the tenant's own: its origin has to be one of the tenant's listed web
origins. Anything else would hand a valid token to whoever wrote the URL (an open redirect
that leaks credentials). Track refuses such a URL, and the page checks it again, because the
tenant's origins may have changed since the action was tracked.

One exception: a loopback page (`http://localhost:3000`, `127.0.0.1`, `[::1]`) is accepted
for every tenant. It can only be a page on the user's own machine, as in development, so it
hands the token to nobody else; and Authsignal's own Python SDK test suite tracks with
`redirect_url: http://localhost:3000` against a tenant that need not list it."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import urlsplit

from passgate.server.services.errors import InvalidRequest
from passgate.server.services.origins import host_of, is_loopback_host, normalize_origin

FIELD = "redirectUrl"


# Pure, and an app tracks with the same few URLs: parsed once each.
@lru_cache(maxsize=1024)
def redirect_origin(url: str) -> str | None:
    """The origin of an absolute http(s) URL as a browser spells it, or None when `url` is
    not one a browser would follow to that origin unambiguously (relative, another scheme,
    user info, backslashes, spaces or control characters)."""
    if any(char.isspace() or ord(char) < 0x20 or char == "\\" for char in url):
        return None
    try:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return None
        if parts.username is not None or parts.password is not None:
            return None
        return normalize_origin(f"{parts.scheme}://{parts.netloc}")
    except (ValueError, InvalidRequest):
        return None


def is_allowed(tenant_origins: Sequence[str], url: str) -> bool:
    origin = redirect_origin(url)
    if origin is None:
        return False
    host = host_of(origin)
    return origin in tenant_origins or (host is not None and is_loopback_host(host))


def check_redirect_url(tenant_origins: Sequence[str], url: str) -> str:
    """`url`, or `InvalidRequest` naming the field when its origin is not the tenant's."""
    if not is_allowed(tenant_origins, url):
        raise InvalidRequest(
            f"{FIELD} {url[:200]!r} is not on one of the tenant's origins "
            f"({', '.join(tenant_origins)}) nor a loopback page: the hosted page only returns "
            "users, with their token, to the tenant's own pages."
        )
    return url
