"""Server settings, read once at start-up from `PASSGATE_*` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
        description="The URL clients reach this server at, e.g. https://auth.example.com. "
        "Used for hosted-page links in track responses; defaults to the request's own URL.",
    )
    max_body_bytes: int = Field(
        default=100_000, ge=1024, description="Requests with a larger body get 413."
    )
    database_pool_size: int = Field(default=10, ge=1)
    log_json: bool = Field(default=False, description="Log as JSON lines instead of console.")
    push_webhook_retry_delays: list[float] = Field(
        default=[1.0, 5.0, 30.0, 120.0],
        description="Seconds to wait before each retry of a push webhook that did not get a 2xx.",
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
        "push challenge is created. Without it, other workers notice within "
        "push_recheck_seconds.",
    )
    push_fcm_url: str = Field(
        default="https://fcm.googleapis.com", description="FCM HTTP v1 endpoint (tests only)."
    )
