"""The ASGI application factory: wiring only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from passgate import __version__
from passgate.server import client_api, errors, server_api, well_known
from passgate.server.middleware import BodySizeLimit
from passgate.server.settings import Settings
from passgate.server.store.database import create_engine, create_sessionmaker


def create_app(settings: Settings | None = None, *, engine: AsyncEngine | None = None) -> FastAPI:
    """Build the app. The database must already be migrated (`passgate db upgrade`, or
    `passgate serve`, which migrates before it listens)."""
    settings = settings or Settings()
    engine = engine or create_engine(settings.database_url, pool_size=settings.database_pool_size)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(
        title="Passgate",
        version=__version__,
        summary="Passkey and push authentication that speaks the Authsignal API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.sessionmaker = create_sessionmaker(engine)
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(server_api.router, prefix="/v1")
    app.include_router(client_api.router, prefix="/v1")
    app.include_router(well_known.router)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
