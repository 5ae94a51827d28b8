"""Path parameters shared by the Server API routes."""

from typing import Annotated

from fastapi import Path

from passgate.server import limits

UserId = Annotated[str, Path(min_length=1, max_length=limits.USER_ID, alias="userId")]
ActionCode = Annotated[
    str,
    Path(max_length=limits.ACTION_CODE, pattern=limits.ACTION_CODE_PATTERN, alias="action"),
]
IdempotencyKey = Annotated[
    str, Path(min_length=1, max_length=limits.IDEMPOTENCY_KEY, alias="idempotencyKey")
]
