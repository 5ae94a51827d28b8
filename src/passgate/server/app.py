"""The ASGI application factory: wiring only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from passgate import __version__
from passgate.server import (
    client_api,
    errors,
    fast_routes,
    pages,
    server_api,
    statement_count,
    well_known,
)
from passgate.server import health as health_checks
from passgate.server.cors import ClientApiCors
from passgate.server.delivery import create_senders, warn_of_log_transports
from passgate.server.middleware import BodySizeLimit, RefuseUnreadableUrl
from passgate.server.observability import Metrics, MetricsMiddleware
from passgate.server.push import create_hub
from passgate.server.services import secrets_box
from passgate.server.services.delivery import Messenger
from passgate.server.services.origins import OriginIndex
from passgate.server.services.outbox import WEBHOOK, Outbox
from passgate.server.services.pruning import Pruner
from passgate.server.services.push.webhooks import WebhookSender
from passgate.server.settings import Settings
from passgate.server.store.database import (
    create_engine,
    create_inline_sqlite_engines,
    create_read_engine,
)
from passgate.server.store.db import Engines


def create_app(settings: Settings | None = None, *, engine: AsyncEngine | None = None) -> FastAPI:
    """Build the app. The database must already be migrated (`passgate db upgrade`, or
    `passgate serve`, which migrates before it listens)."""
    settings = settings or Settings()
    limits, pool_size = settings.database_limits, settings.database_pool_size
    engine = engine or create_engine(settings.database_url, pool_size=pool_size, limits=limits)
    # GET requests, long-poll rechecks and CORS origin lookups read here (server/database.py).
    read_engine = create_read_engine(engine, pool_size=pool_size, limits=limits)
    push_hub, push_http = create_hub(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Without the master key the stored secrets need, refuse to start (secrets_box).
        try:
            await secrets_box.prepare_engine(engine, settings)
        except BaseException:
            await engine.dispose()
            raise
        await warn_of_log_transports(app.state.engines)
        await push_hub.start()
        pruner = Pruner(app.state.engines, settings).start()
        senders = create_senders(app.state.engines, settings, push_http)
        senders[WEBHOOK] = WebhookSender(app.state.engines, push_http)
        outbox = Outbox(app.state.engines, settings, senders).start()
        if push_hub.deliverer is not None:
            push_hub.deliverer.outbox = outbox
        app.state.messenger.outbox = outbox
        yield
        await outbox.aclose()
        await pruner.aclose()
        await push_hub.aclose()
        await push_http.aclose()
        await app.state.engines.dispose()
        await read_engine.dispose()
        await engine.dispose()

    app = FastAPI(
        title="Passgate",
        version=__version__,
        summary="Passkey and push authentication that speaks the Authsignal API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    inline = (
        create_inline_sqlite_engines(engine, pool_size=pool_size, limits=limits)
        if settings.sqlite_inline
        else None
    )
    app.state.engines = Engines(
        engine,
        read_engine,
        inline=inline,
        pool_timeout=limits.pool_timeout,
        lock_timeout=limits.lock_timeout,
    )
    app.state.push_hub = push_hub
    app.state.messenger = Messenger()
    app.state.origin_index = OriginIndex(app.state.engines)
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RefuseUnreadableUrl)
    metrics = Metrics()
    metrics.watch_pools(engine, read_engine)
    app.add_middleware(MetricsMiddleware, metrics=metrics, log_requests=settings.log_requests)
    # Outermost of ours: its headers go on every Client API response, errors included.
    app.add_middleware(
        ClientApiCors, index=app.state.origin_index, max_age=settings.cors_max_age_seconds
    )

    # First, so its answer costs what the stack costs (routers are tried in order, and one
    # that does not match still costs its routes' checks): it is the floor benchmarks divide by.
    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    # For load balancers: live = the process answers; ready = its database answers too.
    app.add_api_route("/health/live", health_checks.live, include_in_schema=False)
    app.add_api_route("/health/ready", health_checks.ready, include_in_schema=False)
    app.add_route("/metrics", metrics.endpoint, include_in_schema=False)
    app.include_router(server_api.router, prefix="/v1")
    app.include_router(client_api.router, prefix="/v1")
    app.include_router(well_known.router)
    pages.install(app, settings)
    # Track and validate without FastAPI's dependency solving (FastAPI keeps the rest).
    fast_routes.install(app)
    # Opt-in, for benchmarks.
    statement_count.install(app, engine, read_engine, *(inline or ()))

    return app
