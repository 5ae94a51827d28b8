"""Authenticator apps over HTTP against a real server, on both databases: enrolment (T1) with
the otpauth URI and QR codes, the first code completing it (T2), sign-ins, the window of one
step, a code accepted once (also when two requests race with it), wrong codes and the attempt
limits, the one enrolment rule, and the secret sealed at rest. Codes are computed by the test
from the secret T1 returned, as an authenticator app does."""

from __future__ import annotations

import base64
import re
import struct
import threading
import zlib
from typing import Any

import segno

from tests.live_server import LiveServer, Tenant
from tests.raw_database import raw_text
from tests.totp.helpers import (
    ENROL_SCOPE,
    App,
    CodesClient,
    current_step,
    parse_uri,
    settled_step,
)

INVALID = "CODE_INVALID_OR_EXPIRED"
MAX_ATTEMPTS = "MAX_ATTEMPTS_EXCEEDED"


def png_modules(data_uri: str) -> list[list[bool]]:
    """The dark modules of a 1-bit greyscale PNG QR code, one entry per module (the image's
    pixels read with zlib and the PNG row filters, then sampled at the module size)."""
    raw = base64.b64decode(data_uri.removeprefix("data:image/png;base64,"))
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks, header = 8, b"", b""
    while offset < len(raw):
        (length,) = struct.unpack(">I", raw[offset : offset + 4])
        kind = raw[offset + 4 : offset + 8]
        body = raw[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks += body
        offset += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert (depth, colour) == (1, 0), "segno writes 1-bit greyscale"
    stride = (width + 7) // 8
    data = zlib.decompress(chunks)
    rows, previous = [], bytes(stride)
    for y in range(height):
        kind, line = (
            data[y * (stride + 1)],
            bytearray(data[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            left = line[i - 1] if i else 0
            up = previous[i]
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                corner = previous[i - 1] if i else 0
                guess = left + up - corner
                nearest = min(
                    (abs(guess - left), 0), (abs(guess - up), 1), (abs(guess - corner), 2)
                )
                line[i] = (line[i] + (left, up, corner)[nearest[1]]) & 0xFF
        previous = bytes(line)
        rows.append([not (line[x // 8] >> (7 - x % 8)) & 1 for x in range(width)])
    return rows


def test_enrol_then_the_first_code_completes_it_and_signs_in(codes: CodesClient) -> None:
    codes.server("PATCH", "/users/tina", json={"email": "tina@example.com"})
    token = codes.token("tina", "enrollTotp")
    enrolled = codes.enroll_totp(token)
    assert enrolled.status_code == 200, enrolled.text
    body = enrolled.json()
    assert body["userId"] == "tina"
    secret = body["secret"]
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), "20 bytes in base32, no padding"
    kind, label, params = parse_uri(body["uri"])
    assert (kind, label) == ("totp", "test:tina@example.com")  # issuer: the tenant's rp name
    assert params == {
        "secret": secret,
        "issuer": "test",
        "algorithm": "SHA1",
        "digits": "6",
        "period": "30",
    }
    # The QR codes carry the URI: the PNG's modules are the URI's QR code, and so is the SVG.
    qr = segno.make(body["uri"], error="m", micro=False)
    assert body["qrCodeSvg"] == qr.svg_inline(scale=4)
    border, scale, size = 4, 4, len(qr.matrix)
    modules = png_modules(body["qrCodePng"])
    sampled = [row[border * scale :: scale][:size] for row in modules[border * scale :: scale]]
    sampled = sampled[:size]
    assert sampled == [[bool(m) for m in row] for row in qr.matrix]

    # Not enrolled until a code verifies: the backend sees no method, nor the authenticator.
    assert codes.user("tina")["isEnrolled"] is False
    assert codes.authenticators("tina") == []

    app = App(secret)
    wrong = codes.verify_totp(token, wrong_codes(app)[0])
    assert wrong.status_code == 200
    assert wrong.json() == {"isVerified": False, "failureReason": INVALID}

    verified = codes.verify_totp(token, app.next_code())
    assert verified.status_code == 200, verified.text
    answer = verified.json()
    assert answer["isVerified"] is True and "failureReason" not in answer
    added = answer["userAuthenticator"]
    assert added["verificationMethod"] == "AUTHENTICATOR_APP"
    assert added["userAuthenticatorId"] == body["userAuthenticatorId"]
    assert added["verifiedAt"]
    validated = codes.validate(answer["accessToken"]).json()
    assert validated["isValid"] is True
    assert validated["state"] == "CHALLENGE_SUCCEEDED"
    assert validated["verificationMethod"] == "AUTHENTICATOR_APP"
    user = codes.user("tina")
    assert user["isEnrolled"] is True
    assert user["enrolledVerificationMethods"] == ["AUTHENTICATOR_APP"]

    # A sign-in: a new action, the next code; no userAuthenticator this time.
    signed_in = codes.sign_in_with(app, "tina")
    assert signed_in["isVerified"] is True and "userAuthenticator" not in signed_in
    assert codes.validate(signed_in["accessToken"]).json()["isValid"] is True
    listed = codes.client("GET", "/user-authenticators", token=codes.token("tina")).json()
    assert [a["verificationMethod"] for a in listed] == ["AUTHENTICATOR_APP"]
    assert listed[0]["lastVerifiedAt"]


def test_enrol_takes_no_body_and_no_content_type(codes: CodesClient) -> None:
    token = codes.token("uma", "enrollTotp")
    plain = codes.http.post(
        "/client/user-authenticators/totp",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert plain.status_code == 200, plain.text
    # Without a token: 401 in Authsignal's shape.
    refused = codes.client("POST", "/user-authenticators/totp")
    assert refused.status_code == 401
    assert set(refused.json()) == {"error", "errorCode", "errorDescription"}


def test_one_step_either_side_is_accepted_two_are_not(codes: CodesClient) -> None:
    """Each user's first code, one offset each: an app's first code has no step before it."""
    secrets = {}
    for offset in (-2, -1, 0, 1, 2):
        user_id = f"vic{offset + 2}"
        token = codes.token(user_id, "enrollTotp")
        secrets[offset] = (token, App(codes.enroll_totp(token).json()["secret"]))
    step = settled_step()
    for offset, (token, app) in secrets.items():
        answer = codes.verify_totp(token, app.code(step + offset)).json()
        if abs(offset) <= 1:
            assert answer["isVerified"] is True, (offset, answer)
        elif app.code(step + offset) not in {app.code(step + d) for d in (-1, 0, 1)}:
            assert answer == {"isVerified": False, "failureReason": INVALID}, offset


def test_a_code_is_accepted_once(codes: CodesClient) -> None:
    app, _ = codes.add_app("walt")
    code = app.next_code()
    first = codes.verify_totp(codes.token("walt"), code)
    assert first.json()["isVerified"] is True
    again = codes.verify_totp(codes.token("walt"), code)
    assert again.json() == {"isVerified": False, "failureReason": INVALID}
    # An older code (one step back, still in the window) is refused too: steps only move on.
    older = codes.verify_totp(codes.token("walt"), app.code(app.used - 1))
    assert older.json()["isVerified"] is False


def test_two_requests_racing_with_one_code_do_not_both_pass(
    codes: CodesClient, server: LiveServer, tenant: Tenant
) -> None:
    app, _ = codes.add_app("xena")
    code = app.next_code()
    tokens = [codes.token("xena") for _ in range(8)]
    answers: list[dict[str, Any]] = []
    start = threading.Barrier(len(tokens))

    def race(token: str) -> None:
        with CodesClient(server.api_url, tenant) as racer:
            start.wait()
            answers.append(racer.verify_totp(token, code).json())

    threads = [threading.Thread(target=race, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a["isVerified"] for a in answers) == [False] * 7 + [True], answers


def test_five_wrong_codes_then_the_action_refuses_every_answer(codes: CodesClient) -> None:
    app, _ = codes.add_app("yuri")
    token = codes.token("yuri")
    wrong = wrong_codes(app)
    for code in wrong[:5]:
        assert codes.verify_totp(token, code).json()["failureReason"] == INVALID
    sixth = codes.verify_totp(token, app.next_code())
    assert sixth.json() == {"isVerified": False, "failureReason": MAX_ATTEMPTS}
    # Another action is not locked: the user signs in (the refused code was never checked,
    # so it was not used up either).
    assert codes.verify_totp(codes.token("yuri"), app.code(app.used)).json()["isVerified"]


def test_wrong_codes_are_limited_per_user_across_actions(codes: CodesClient) -> None:
    app, _ = codes.add_app("zoe")
    wrong = iter(wrong_codes(app) * 3)
    for _ in range(2):  # two actions, five wrong codes each: the user's ten
        token = codes.token("zoe")
        for _ in range(5):
            assert codes.verify_totp(token, next(wrong)).json()["failureReason"] == INVALID
    # A third action's first answer is over the user's limit, even the right code.
    refused = codes.verify_totp(codes.token("zoe"), app.next_code())
    assert refused.json() == {"isVerified": False, "failureReason": MAX_ATTEMPTS}
    events = codes.server("GET", "/audit-events").json()["events"]
    limited = [e for e in events if e["action"] == "security.rate_limited"]
    assert limited and limited[0]["details"]["limit"] == "totp:user"


def test_a_second_app_needs_leave_to_add_and_replaces_the_first(codes: CodesClient) -> None:
    first, _ = codes.add_app("abe")
    refused = codes.enroll_totp(codes.token("abe", "enrollTotp"))
    assert refused.status_code == 403, refused.text
    assert refused.json()["errorCode"] == "forbidden"

    token = codes.token("abe", "enrollTotp", scope=ENROL_SCOPE)
    enrolled = codes.enroll_totp(token)
    assert enrolled.status_code == 200, enrolled.text
    second = App(enrolled.json()["secret"])
    verified = codes.verify_totp(token, second.next_code()).json()
    assert verified["isVerified"] is True and verified["userAuthenticator"]
    listed = [
        a for a in codes.authenticators("abe") if a["verificationMethod"] == "AUTHENTICATOR_APP"
    ]
    assert [a["userAuthenticatorId"] for a in listed] == [enrolled.json()["userAuthenticatorId"]]
    # The old app's codes no longer verify; the new one's do.
    assert codes.sign_in_with(first, "abe") == {"isVerified": False, "failureReason": INVALID}
    assert codes.sign_in_with(second, "abe")["isVerified"] is True


def test_an_unverified_app_is_not_enrolled_and_needs_a_token_that_may_enrol(
    codes: CodesClient,
) -> None:
    first, _ = codes.add_app("bea")
    # A pending second app (with leave to add), then a plain sign-in token: that token cannot
    # complete the new app's enrolment, so only the verified app answers it.
    enrolled = codes.enroll_totp(codes.token("bea", "enrollTotp", scope=ENROL_SCOPE))
    pending = App(enrolled.json()["secret"])
    plain = codes.verify_totp(codes.token("bea"), pending.next_code())
    assert plain.json() == {"isVerified": False, "failureReason": INVALID}
    assert codes.sign_in_with(first, "bea")["isVerified"] is True
    # A user whose only app is pending has nothing to verify with a plain token... until
    # the token may enrol (a user with no authenticator may).
    lone = codes.enroll_totp(codes.token("cyd", "enrollTotp"))
    assert codes.user("cyd")["isEnrolled"] is False
    answer = codes.verify_totp(codes.token("cyd"), App(lone.json()["secret"]).next_code())
    assert answer.json()["isVerified"] is True


def test_verify_without_an_app_is_a_clear_error(codes: CodesClient) -> None:
    refused = codes.verify_totp(codes.token("dee"), "123456")
    assert refused.status_code == 400
    assert refused.json()["errorCode"] == "not_enrolled"
    too_long = codes.verify_totp(codes.token("dee"), "1" * 33)
    assert too_long.status_code == 400


def test_the_secret_is_sealed_at_rest(codes: CodesClient, database_url: str) -> None:
    token = codes.token("eve", "enrollTotp")
    secret = codes.enroll_totp(token).json()["secret"]
    raw = raw_text(database_url)
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    assert secret not in raw and secret.lower() not in raw
    assert key.hex() not in raw and base64.b64encode(key).decode() not in raw
    assert "enc:v1:" in raw


def wrong_codes(app: App) -> list[str]:
    """Six-digit codes that are none of the app's for the next minutes."""
    now = current_step()
    valid = {app.code(step) for step in range(now - 2, now + 12)}
    return [code for code in (f"{n:06d}" for n in range(100000, 100040)) if code not in valid][:10]
