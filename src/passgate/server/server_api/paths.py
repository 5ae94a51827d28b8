"""Path parameters shared by the Server API routes."""

from typing import Annotated

from fastapi import Path

UserId = Annotated[str, Path(min_length=1, max_length=255, alias="userId")]
ActionCode = Annotated[
    str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$", alias="action")
]
IdempotencyKey = Annotated[str, Path(min_length=1, max_length=255, alias="idempotencyKey")]
