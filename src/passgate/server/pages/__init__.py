"""Browser-facing pages served by Passgate itself: the hosted challenge pages (the `url` a
track returns) and the admin console, server-rendered with small dependency-free scripts."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from passgate.server.pages import challenge, console, magic_link, push_links
from passgate.server.pages.rendering import STATIC
from passgate.server.settings import Settings


def install(app: FastAPI, settings: Settings) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(challenge.router)
    app.include_router(magic_link.router)
    app.include_router(push_links.router)
    if settings.console:
        app.include_router(console.router)
