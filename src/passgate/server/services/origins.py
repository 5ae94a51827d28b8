"""Origins: what a tenant may list, how a relying party id relates to them, and the per-process
index of which tenants list an origin (CORS preflights carry no credentials, so they are
answered for any origin some tenant lists).

An origin is what a browser puts in clientDataJSON and the `Origin` header: `scheme://host`
with a port only when it is not the scheme's default, lowercase, no path. Android apps'
`android:apk-key-hash:...` origins come from the tenant's app fingerprints."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from collections.abc import Iterable, Sequence
from functools import cache
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList

from passgate.server.services.errors import InvalidRequest
from passgate.server.store import tenants as tenant_store
from passgate.server.store.db import Engines

ANDROID_ORIGIN = re.compile(r"^android:apk-key-hash:[A-Za-z0-9_-]{43}$")
HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


@cache
def _public_suffixes() -> PublicSuffixList:
    """The public suffix list bundled with `publicsuffixlist`: nothing is fetched."""
    return PublicSuffixList()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _check_hostname(host: str, shown: str) -> None:
    if _is_ip(host):
        return
    labels = host.split(".")
    if len(host) > 253 or not all(HOST_LABEL.match(label) for label in labels):
        raise InvalidRequest(f"{shown!r} does not have a valid host name")


def normalize_origin(value: str) -> str:
    """`value` as a browser spells the origin, or `InvalidRequest` saying what is wrong.

    Web origins are `https://host[:port]`; plain `http://` only for loopback hosts, where
    browsers treat pages as secure. Android apps: `android:apk-key-hash:<43 base64url>`."""
    text = value.strip()
    if text.startswith("android:"):
        if not ANDROID_ORIGIN.match(text):
            raise InvalidRequest(
                f"{value!r} is not an Android origin: android:apk-key-hash: and the base64url "
                "SHA-256 of the signing certificate (43 characters)"
            )
        return text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest(f"{value!r} is not an origin: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise InvalidRequest(
            f"{value!r} is not an origin such as https://app.example.com "
            "(or android:apk-key-hash:...)"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise InvalidRequest(
            f"{value!r} is not an origin: only scheme, host and port (no path, query or user)"
        )
    host = parts.hostname.encode("idna").decode() if not _is_ip(parts.hostname) else parts.hostname
    host = host.lower()
    _check_hostname(host, value)
    if ":" in host:
        host = f"[{host}]"
    if scheme == "http" and not is_loopback_host(host):
        raise InvalidRequest(
            f"{value!r} uses http: browsers allow passkeys and secure cookies over http only "
            "on localhost; use https"
        )
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{netloc}"


def is_loopback_host(host: str) -> bool:
    """`localhost`, a `*.localhost` name or a loopback address (IPv6 with or without brackets):
    always this machine, which browsers treat as a secure context."""
    return host in LOOPBACK_NAMES or host == "::1" or host.endswith(".localhost")


def web_origins(origins: Iterable[str]) -> tuple[str, ...]:
    """The http(s) origins of a list that may also hold Android apps' origins: the pages that
    may frame Passgate's hosted page and hear from it."""
    return tuple(origin for origin in origins if origin.startswith(("https://", "http://")))


def host_of(origin: str) -> str | None:
    """The host of a web origin (IPv6 without brackets), None for an Android origin."""
    if origin.startswith("android:"):
        return None
    return urlsplit(origin).hostname


def is_registrable_suffix(rp_id: str, host: str) -> bool:
    """True when a page on `host` may use passkeys scoped to `rp_id` (WebAuthn's rule): the rp
    id is the host itself, or a parent domain of it that is not a public suffix such as
    `com` or `github.io`. `localhost` counts as registrable, as browsers allow it."""
    rp_id, host = rp_id.lower(), host.lower().strip("[]")
    if rp_id == host:
        return True
    if _is_ip(host) or _is_ip(rp_id) or not host.endswith("." + rp_id):
        return False
    return rp_id == "localhost" or not _public_suffixes().is_public(rp_id)


def check_rp_id(rp_id: str) -> str:
    """A relying party id: a bare domain (or IP address), lowercase; not a public suffix."""
    text = rp_id.strip().lower()
    if not text or "://" in text or "/" in text or (":" in text and not _is_ip(text)):
        raise InvalidRequest(f"rp id {rp_id!r} must be a bare domain such as example.com")
    _check_hostname(text, rp_id)
    if text != "localhost" and not _is_ip(text) and _public_suffixes().is_public(text):
        raise InvalidRequest(
            f"rp id {rp_id!r} is a public suffix: browsers refuse passkeys scoped to it"
        )
    return text


def check_origins_fit(rp_id: str, origins: Iterable[str]) -> None:
    """Every web origin must be able to use the rp id, or passkeys fail there."""
    for origin in origins:
        host = host_of(origin)
        if host is not None and not is_registrable_suffix(rp_id, host):
            raise InvalidRequest(
                f"rp id {rp_id!r} is not a registrable suffix of {origin!r}: a page there "
                f"cannot use passkeys for {rp_id!r}"
            )


def normalize_all(origins: Sequence[str]) -> list[str]:
    normal: list[str] = []
    for origin in origins:
        value = normalize_origin(origin)
        if value not in normal:
            normal.append(value)
    return normal


# The index: origin -> ids of the tenants that list it ------------------------------------

# Rebuilt when a tenant changed in this process, when older than INDEX_SECONDS, and (at most
# once a second) when a preflight comes from an origin it does not know: an origin just added
# in another process works at once, one just removed stops within INDEX_SECONDS.
INDEX_SECONDS = 10.0
MISS_REFRESH_SECONDS = 1.0
_generation = 0


def tenants_changed() -> None:
    """Called by the services after changing any tenant's origins in this process."""
    global _generation
    _generation += 1


class OriginIndex:
    """One per app (each app has its own database)."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines
        self._tenants_by_origin: dict[str, frozenset[str]] = {}
        self._built_at = float("-inf")
        self._built_generation = -1
        self._lock = asyncio.Lock()

    async def tenants_listing(self, origin: str) -> frozenset[str]:
        """Ids of the tenants whose origins include `origin`."""
        age = time.monotonic() - self._built_at
        found = self._tenants_by_origin.get(origin)
        stale = age > INDEX_SECONDS or self._built_generation != _generation
        if stale or (found is None and age > MISS_REFRESH_SECONDS):
            await self._rebuild()
            found = self._tenants_by_origin.get(origin)
        return found or frozenset()

    async def _rebuild(self) -> None:
        async with self._lock:
            fresh = time.monotonic() - self._built_at <= MISS_REFRESH_SECONDS
            if fresh and self._built_generation == _generation:
                return  # another request rebuilt it while this one waited
            generation = _generation
            async with self._engines.transaction(read_only=True) as db:
                rows = await tenant_store.find_tenant_origins(db)
            index: dict[str, set[str]] = {}
            for tenant_id, origins in rows:
                for origin in origins or ():
                    index.setdefault(origin, set()).add(tenant_id)
            self._tenants_by_origin = {key: frozenset(ids) for key, ids in index.items()}
            self._built_at, self._built_generation = time.monotonic(), generation
