"""Passgate: self-hostable passkey and push authentication that speaks the Authsignal API.

`pip install passgate` is this client SDK; `pip install "passgate[server]"` adds the server.

    from passgate import Authsignal
    client = Authsignal("TENANT_ID", base_url="http://127.0.0.1:8000/v1")
"""

from passgate._version import __version__
from passgate.sdk._async.client import Authsignal
from passgate.sdk._async.push import PushEnrolmentLink, read_push_link
from passgate.sdk._protocol import DEFAULT_BASE_URL, Region
from passgate.sdk._push_protocol import DeviceKeys
from passgate.sdk._sync.client import AuthsignalSync
from passgate.sdk._types import (
    AppChallenge,
    AppCredential,
    AuthsignalResponse,
    ChallengeResponse,
    ChallengeUser,
    EnrollResponse,
    EnrollTotpResponse,
    ErrorCode,
    RecoveryCodesResponse,
    SecurityKeyEnrollResponse,
    SignInResponse,
    SignUpResponse,
    TokenPayload,
    TokenPayloadOther,
    UpdatedAppCredential,
    VerifyResponse,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "AppChallenge",
    "AppCredential",
    "Authsignal",
    "AuthsignalResponse",
    "AuthsignalSync",
    "ChallengeResponse",
    "ChallengeUser",
    "DeviceKeys",
    "EnrollResponse",
    "EnrollTotpResponse",
    "ErrorCode",
    "PushEnrolmentLink",
    "RecoveryCodesResponse",
    "Region",
    "SecurityKeyEnrollResponse",
    "SignInResponse",
    "SignUpResponse",
    "TokenPayload",
    "TokenPayloadOther",
    "UpdatedAppCredential",
    "VerifyResponse",
    "__version__",
    "read_push_link",
]

for _name in __all__:
    _member = globals()[_name]
    if hasattr(_member, "__module__") and isinstance(_member, type):
        _member.__module__ = "passgate"
