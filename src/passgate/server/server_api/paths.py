"""Path parameters shared by the Server API routes."""

from typing import Annotated

from fastapi import Path

from passgate.server.services.tenants import ACTION_CODE

UserId = Annotated[str, Path(min_length=1, max_length=255, alias="userId")]
ActionCode = Annotated[
    str, Path(max_length=100, pattern=rf"^{ACTION_CODE.pattern}$", alias="action")
]
IdempotencyKey = Annotated[str, Path(min_length=1, max_length=255, alias="idempotencyKey")]
