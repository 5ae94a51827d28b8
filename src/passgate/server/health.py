"""Health for load balancers and orchestrators (docs/observability.md#health).

- `GET /health/live`: the process is up and its event loop answers. Restart it when this fails.
- `GET /health/ready`: the database answers `SELECT 1` within `READY_TIMEOUT` seconds; 503
  otherwise, so the load balancer sends requests elsewhere. Redis is reported but never makes
  a process unready: without it, long-poll wake-ups fall back to the database."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from passgate import __version__

# Short: a load balancer probes every few seconds and must hear "not ready" before it times out.
READY_TIMEOUT = 2.0
REDIS_TIMEOUT = 1.0


async def live() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


async def ready(request: Request) -> JSONResponse:
    database = await _database(request)
    body: dict[str, Any] = {"status": "ok" if database == "ok" else "unavailable"}
    body["database"] = database
    redis_url: str | None = request.app.state.settings.redis_url
    if redis_url:
        # A Redis outage degrades wake-ups across processes; it does not take this one out.
        body["redis"] = "ok" if await _redis_answers(redis_url) else "degraded"
    return JSONResponse(body, status_code=200 if database == "ok" else 503)


async def _database(request: Request) -> str:
    engine = request.app.state.engines.read
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except TimeoutError:
        return "timeout"
    except Exception as exc:  # any failure to answer is "not ready", said in one word
        # The driver's own error says more than the wrappers around it.
        cause: BaseException = exc
        for _ in range(5):
            if cause.__cause__ is None:
                break
            cause = cause.__cause__
        return f"error: {type(cause).__name__}"
    return "ok"


async def _redis_answers(url: str) -> bool:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT)
    try:
        async with asyncio.timeout(REDIS_TIMEOUT * 2):
            await client.ping()
    except (RedisError, OSError, TimeoutError):
        return False
    finally:
        await client.aclose()
    return True
