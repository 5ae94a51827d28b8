"""Domain errors. Each carries the HTTP status and Authsignal `errorCode` it is shown as.

PassgateError
├── InvalidRequest      400 invalid_request
├── InvalidToken        400 invalid_token
│   └── ExpiredToken    400 expired_token
├── Unauthorized        401 unauthorized
├── Forbidden           403 forbidden
├── NotFound            404 not_found
└── Conflict            409 conflict
"""

from __future__ import annotations


class PassgateError(Exception):
    status_code = 400
    error_code = "invalid_request"
    # True when the request's writes must be committed even though it fails (for example a
    # passkey flagged as possibly cloned while its sign-in is refused).
    keep_changes = False

    def __init__(self, description: str, *, error_code: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        if error_code is not None:
            self.error_code = error_code

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.status_code}, {self.error_code!r}, {self.description!r})"
        )


class InvalidRequest(PassgateError):
    pass


class InvalidToken(PassgateError):
    error_code = "invalid_token"


class ExpiredToken(InvalidToken):
    error_code = "expired_token"


class Unauthorized(PassgateError):
    status_code = 401
    error_code = "unauthorized"


class Forbidden(PassgateError):
    status_code = 403
    error_code = "forbidden"


class NotFound(PassgateError):
    status_code = 404
    error_code = "not_found"


class Conflict(PassgateError):
    status_code = 409
    error_code = "conflict"


UNAUTHORIZED_SECRET_KEY = (
    "The request is unauthorized. Check that your API key and region base URL are correctly "
    "configured."
)
