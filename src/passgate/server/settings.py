"""Server settings, read once at start-up from `PASSGATE_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from passgate.server.store.database import Limits

DEFAULT_DATABASE_URL = "sqlite:///./.passgate/passgate.db"


class Settings(BaseSettings):
    """Operator-facing configuration. Every field is `PASSGATE_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="PASSGATE_", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="sqlite:///path (embedded, the default) or postgresql://user@host/db",
    )
    public_url: str | None = Field(
        default=None,
        description="The URL browsers reach this server at, e.g. https://auth.example.com: "
        "the origin of the hosted challenge pages and the admin console, and the base of the "
        "`url` in track responses. `passgate serve` defaults it to its listen address; it is "
        "never taken from a request's Host header.",
    )
    console: bool = Field(
        default=True, description="Serve the admin console at /admin (false turns it off)."
    )
    console_idle_minutes: int = Field(
        default=30,
        ge=1,
        le=1440,
        description="A console session unused for this long ends; the admin signs in again.",
    )
    console_session_hours: int = Field(
        default=12,
        ge=1,
        le=720,
        description="A console session ends this long after sign-in, however active.",
    )
    cors_max_age_seconds: int = Field(
        default=600, ge=0, le=86_400, description="How long browsers may cache a CORS preflight."
    )
    max_body_bytes: int = Field(
        default=100_000, ge=1024, description="Requests with a larger body get 413."
    )
    data_dir: Path = Field(
        default=Path(".passgate"),
        description="Passgate's own files: the master key file (master.key) when "
        "PASSGATE_MASTER_KEY is not set.",
    )
    master_key: SecretStr | None = Field(
        default=None,
        description="The key that encrypts secrets at rest: base64url of 32 random bytes "
        "(`passgate keys generate`). Unset: the key file in data_dir, made on first use.",
    )
    database_pool_size: int = Field(default=10, ge=1)
    sqlite_inline: bool = Field(
        default=True,
        description="On SQLite, run statements on the server's event loop thread (the "
        "standard library's sqlite3) instead of handing each to a driver thread "
        "(aiosqlite): measured 30-55% less server CPU per operation. False goes back to "
        "aiosqlite. See docs/performance.md.",
    )
    # A request waits at most pool + lock timeout (1.4 s by default), under the 2 s after which
    # Authsignal's Python SDK gives up: a busy or stalled database is answered 503 with
    # Retry-After, never a late 500.
    database_pool_timeout_seconds: float = Field(
        default=0.7,
        gt=0,
        le=60,
        description="How long a request waits for a free database connection before it is "
        "answered 503. On SQLite, the wait for this process's turn to write.",
    )
    database_lock_timeout_seconds: float = Field(
        default=0.7,
        gt=0,
        le=60,
        description="How long a statement waits for a lock another transaction holds "
        "(PostgreSQL's lock_timeout; on SQLite the busy timeout, for another process's "
        "writer) before the request is answered 503.",
    )
    database_statement_timeout_seconds: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="PostgreSQL's statement_timeout: a longer statement is cancelled and the "
        "request answered 503.",
    )
    log_json: bool = Field(default=False, description="Log as JSON lines instead of console.")
    log_requests: bool = Field(
        default=True,
        description="Log one line per request (method, route template, status, duration, "
        "tenant, client IP; never credentials or query strings). See docs/observability.md.",
    )
    migrate_on_start: bool = Field(
        default=True,
        description="`passgate serve` applies pending migrations before it listens (under a "
        "database lock, so many processes may start at once). False: run `passgate db "
        "upgrade` as its own deploy step; serve then refuses a database that is behind.",
    )
    shutdown_timeout_seconds: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="On SIGTERM, how long requests in flight may take to finish before they "
        "are cut off (waiting long-polls answer at once).",
    )
    push_webhook_retry_delays: list[float] = Field(
        default=[1.0, 5.0, 30.0, 120.0],
        description="No longer used: webhooks go through the outbox, retried on the schedule "
        "of outbox_retry_base_seconds, outbox_retry_max_seconds and outbox_max_attempts.",
    )
    push_delivery_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one webhook, APNs or FCM call."
    )
    push_recheck_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often a waiting long-poll looks in the database, for challenges "
        "created by another worker process.",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis://host:port/db: wakes long-polls in every worker process when a "
        "push challenge is created. Without it, PostgreSQL's LISTEN/NOTIFY does (and takes "
        "over while Redis is down); on SQLite other processes notice within "
        "push_recheck_seconds.",
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1,::1",
        description="Comma-separated addresses and networks (10.0.0.0/8) of the reverse "
        "proxies whose X-Forwarded-For is believed, or * for any peer; the client IP is then "
        "the right-most address in it that is not one of them. Other peers' header is "
        "ignored. The default trusts a proxy on the same host. See "
        "docs/configuration.md#behind-a-reverse-proxy.",
    )
    push_fcm_url: str = Field(
        default="https://fcm.googleapis.com", description="FCM HTTP v1 endpoint (tests only)."
    )
    client_rate_limit_per_ip: int = Field(
        default=120,
        ge=0,
        description="Client API calls that write with nothing but the public tenant id (C1, "
        "C4 and their /web variants): at most this many per window from one client IP (an "
        "IPv6 /64) to one tenant; more get 429. 0 turns the limit off.",
    )
    client_rate_limit_per_tenant: int = Field(
        default=6000,
        ge=0,
        description="The same calls to one tenant from all IPs together, per window; more get "
        "429. 0 turns the limit off.",
    )
    client_rate_limit_window_seconds: int = Field(
        default=60, ge=1, le=3600, description="The fixed window both client limits count in."
    )
    action_retention_days: int = Field(
        default=90,
        ge=0,
        description="Actions whose state has not changed for this many days are deleted "
        "(REVIEW_REQUIRED ones wait for their reviewer). 0 keeps actions forever.",
    )
    prune_interval_seconds: float = Field(
        default=300,
        ge=0,
        description="How often each server process deletes expired rows (challenges, nonces, "
        "rate-limit windows, console links and sessions, old actions). 0: never in the "
        "server; run `passgate db prune` from cron instead.",
    )
    outbox_poll_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How often each server process looks for outbox messages (webhooks, email, "
        "SMS) that are due: retries, and messages another process enqueued or left behind. A "
        "message enqueued in this process is sent at once. 0: this process sends none.",
    )
    outbox_retry_base_seconds: float = Field(
        default=2.0,
        gt=0,
        description="The first retry of an outbox message waits about this long; each later "
        "one twice as long as the one before (with jitter), up to outbox_retry_max_seconds.",
    )
    outbox_retry_max_seconds: float = Field(
        default=900.0, gt=0, description="The longest wait between two tries of a message."
    )
    outbox_max_attempts: int = Field(
        default=10,
        ge=1,
        description="Tries before a message is given up (marked failed, logged and audited).",
    )
    outbox_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a process holds a message it is sending; if it dies, another "
        "process sends the message after this. Keep it above push_delivery_timeout_seconds.",
    )
    outbox_retention_days: int = Field(
        default=7,
        ge=1,
        description="Delivered and failed outbox messages are pruned after this many days.",
    )

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _forwarded_allow_ips(cls, value: str) -> str:
        from passgate.server.forwarded import TrustedProxies

        TrustedProxies.parse(value)  # names the entry that is wrong
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL such as https://auth.example.com")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(
                f"{value!r} must be scheme, host and port only (Passgate's pages and APIs "
                "live at the root of its host)"
            )
        return value.strip().rstrip("/")

    @property
    def database_limits(self) -> Limits:
        return Limits(
            pool_timeout=self.database_pool_timeout_seconds,
            lock_timeout=self.database_lock_timeout_seconds,
            statement_timeout=self.database_statement_timeout_seconds,
        )

    @property
    def public_origin(self) -> str | None:
        """`scheme://host[:port]` of `public_url`: the origin the hosted pages run on."""
        if self.public_url is None:
            return None
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}".lower()

    @property
    def secure_cookies(self) -> bool:
        return bool(self.public_url and self.public_url.startswith("https://"))
