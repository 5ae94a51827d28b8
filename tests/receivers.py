"""Real receivers on loopback for what Passgate sends: an SMTP server (aiosmtpd) and an HTTP
endpoint, each capturing what arrives so a test can read the delivered code or link.

Usage:

    from tests.receivers import HttpReceiver, SmtpReceiver, TestCa

    with SmtpReceiver() as smtp:                       # plain SMTP on 127.0.0.1
        ...point the tenant's email settings at smtp.host / smtp.port...
        message = smtp.wait(to="uma@example.com")      # blocks up to 15 s
        message.code, message.link, message.subject, message.text, message.html

    ca = TestCa()                                      # a CA and a server certificate
    with SmtpReceiver(security="starttls", ca=ca, username="u", password="p") as smtp:
        ...trust ca.pem (the CA certificate's PEM text)...

    with HttpReceiver(statuses=[503]) as hook:         # 503 first, then 200
        request = hook.wait()                          # .path .headers .body .json() .form()

`SmtpReceiver(answers=["451 4.3.0 Try later", "550 5.7.1 No"])` answers each message's DATA
with the next answer in turn (then 250): a server that refuses. `security` is "none",
"starttls" (the client must STARTTLS before MAIL) or "tls" (implicit TLS from the first
byte). Both receivers run in a thread of their own, so a test's server (another thread) and
the test itself can both reach them; close them (or use `with`) when done.

To point a tenant of a test server (tests/live_server.py) at them, as `passgate tenant email`
and `passgate tenant sms` would:

    use_smtp(server, tenant.id, smtp)                  # From no-reply@passgate.example.com
    secret = use_sms_webhook(server, tenant.id, hook)  # the webhook's signing secret"""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import ipaddress
import json
import re
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from passgate.server.services import audit
from passgate.server.services.delivery import config
from passgate.server.store.db import Db

if TYPE_CHECKING:
    from tests.live_server import LiveServer

Security = Literal["none", "starttls", "tls"]

_CODE = re.compile(r"\b(\d{6})\b")
_LINK = re.compile(r"https?://[^\s<>\"']+")


class TestCa:
    """A certificate authority made here, and a server certificate it issued for localhost
    and 127.0.0.1: what a tenant's `--smtp-ca-file` trusts in the tests."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, name: str = "Passgate Test CA") -> None:
        now = datetime.datetime.now(datetime.UTC)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._ca_key.public_key()),
                critical=False,
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        self._server_key = ec.generate_private_key(ec.SECP256R1())
        self.server_cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(subject)
            .public_key(self._server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()),
                critical=False,
            )
            .sign(self._ca_key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        """The CA certificate, PEM: what a client trusts."""
        return self.ca_cert.public_bytes(serialization.Encoding.PEM).decode()

    def write_pem(self, directory: Path) -> Path:
        """The CA certificate in a file (for `--smtp-ca-file`)."""
        path = directory / "test-ca.pem"
        path.write_text(self.pem)
        return path

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context presenting the server certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        key = self._server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        chain = self.server_cert.public_bytes(serialization.Encoding.PEM)
        # ssl loads a certificate and key from files only.
        with tempfile.TemporaryDirectory() as directory:
            cert_path, key_path = Path(directory) / "cert.pem", Path(directory) / "key.pem"
            cert_path.write_bytes(chain)
            key_path.write_bytes(key)
            context.load_cert_chain(cert_path, key_path)
        return context


@dataclass
class ReceivedEmail:
    """One message the SMTP receiver accepted."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    # Whether the session was under TLS (STARTTLS or implicit) and who logged in, if anyone.
    tls: bool
    login: str | None

    @property
    def subject(self) -> str:
        return str(self.message["subject"] or "")

    @property
    def to(self) -> str:
        return str(self.message["to"] or "")

    def _part(self, subtype: str) -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        # Line ends as written (SMTP carries CRLF).
        return str(part.get_content()).replace("\r\n", "\n") if part is not None else ""

    @property
    def text(self) -> str:
        return self._part("plain")

    @property
    def html(self) -> str:
        return self._part("html")

    @property
    def code(self) -> str | None:
        """The first six-digit number in the plain-text body (a one-time code)."""
        found = _CODE.search(self.text)
        return found.group(1) if found else None

    @property
    def link(self) -> str | None:
        """The first http(s) URL in the plain-text body (a magic link)."""
        found = _LINK.search(self.text)
        return found.group(0) if found else None


class _Handler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self._receiver = receiver

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        receiver = self._receiver
        with receiver._lock:
            answer = receiver.answers.pop(0) if receiver.answers else "250 OK"
        if not answer.startswith("250"):
            with receiver._lock:
                receiver.refused += 1
            return answer
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        login = session.auth_data
        under_tls = server._tls_protocol is not None or (
            server.transport is not None
            and server.transport.get_extra_info("ssl_object") is not None
        )
        received = ReceivedEmail(
            mail_from=str(envelope.mail_from),
            rcpt_tos=list(envelope.rcpt_tos),
            message=parsed,
            tls=under_tls,
            login=login.login.decode() if isinstance(login, LoginPassword) else None,
        )
        with receiver._arrived:
            receiver.messages.append(received)
            receiver._arrived.notify_all()
        return "250 Message accepted for delivery"


class _SocketController(Controller):
    """aiosmtpd's Controller on a socket bound beforehand (port 0: the system picks a free
    port, so parallel tests never collide)."""

    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)
        self._sock = sock
        self.protocols: list[SMTP] = []

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)

    def factory(self) -> SMTP:
        protocol = cast(SMTP, super().factory())  # type: ignore[no-untyped-call]
        self.protocols.append(protocol)
        return protocol

    def stop(self, no_assert: bool = False) -> None:
        """Drop every connection first: a TLS connection the client left without a TLS
        close would otherwise wait for one after the loop has closed, and its socket be
        reported unclosed."""

        async def abort() -> None:
            for protocol in self.protocols:
                if isinstance(protocol.transport, asyncio.Transport):
                    protocol.transport.abort()
            await asyncio.sleep(0.05)  # their connection_lost callbacks

        if self._thread is not None and self.loop.is_running():
            asyncio.run_coroutine_threadsafe(abort(), self.loop).result(timeout=5)
        super().stop(no_assert=no_assert)


class SmtpReceiver:
    """An SMTP server on 127.0.0.1 that keeps every message it accepts (see the module
    docstring). With `username` and `password` it offers AUTH (PLAIN, LOGIN); under "starttls"
    it requires STARTTLS first, and AUTH after it."""

    def __init__(
        self,
        *,
        security: Security = "none",
        ca: TestCa | None = None,
        username: str | None = None,
        password: str | None = None,
        answers: list[str] | None = None,
    ) -> None:
        if security != "none" and ca is None:
            ca = TestCa()
        self.ca = ca
        self.security = security
        self.username, self.password = username, password
        self.messages: list[ReceivedEmail] = []
        self.answers = list(answers or [])
        self.refused = 0
        self.failed_logins = 0
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        self.host, self.port = "127.0.0.1", sock.getsockname()[1]
        kwargs: dict[str, Any] = {"ready_timeout": 10.0}
        context = ca.server_context() if ca is not None else None
        if security == "tls":
            kwargs["ssl_context"] = context
        elif security == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        if username is not None:
            expected = LoginPassword(username.encode(), (password or "").encode())

            def authenticate(
                server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
            ) -> AuthResult:
                if data == expected:
                    return AuthResult(success=True, auth_data=data)
                with self._lock:
                    self.failed_logins += 1
                return AuthResult(success=False, handled=False)

            kwargs.update(
                authenticator=authenticate,
                # aiosmtpd knows of STARTTLS only: under implicit TLS it would offer no AUTH
                # if it required TLS for it, and it warns when AUTH is required without TLS.
                auth_required=security == "starttls",
                auth_require_tls=security == "starttls",
            )
        self._controller = _SocketController(_Handler(self), sock, **kwargs)
        self._controller.start()

    def wait(self, *, to: str | None = None, count: int = 1, timeout: float = 15) -> ReceivedEmail:
        """The `count`-th message received (for `to`, if given), waiting up to `timeout`
        seconds for it; AssertionError if it does not come."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [m for m in self.messages if to is None or to in m.rcpt_tos]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no message #{count}{f' to {to}' if to else ''} within {timeout} s "
                        f"({len(self.messages)} received, {self.refused} refused)"
                    )
                self._arrived.wait(left)

    def close(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpReceiver:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    # For convenience: lower-cased header names.
    lower_headers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.lower_headers = {name.lower(): value for name, value in self.headers.items()}

    def header(self, name: str) -> str | None:
        return self.lower_headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """An application/x-www-form-urlencoded body (each name's last value)."""
        return dict(urllib.parse.parse_qsl(self.body.decode(), keep_blank_values=True))


class HttpReceiver:
    """An HTTP server on 127.0.0.1 that records every request. It answers each with the next
    of `statuses` (then 200), with the JSON `reply(request)` returns (default `{}`)."""

    def __init__(
        self,
        statuses: list[int] | None = None,
        reply: Callable[[ReceivedRequest], Any] | None = None,
    ) -> None:
        self.requests: list[ReceivedRequest] = []
        self.statuses = list(statuses or [])
        lock = threading.Condition()
        self._arrived = lock
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                request = ReceivedRequest(self.command, self.path, dict(self.headers), body)
                with lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                answer = json.dumps(reply(request) if reply else {}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                with lock:
                    receiver.requests.append(request)
                    lock.notify_all()

            do_POST = do_GET = do_PUT = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_port}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def wait(self, *, count: int = 1, timeout: float = 15) -> ReceivedRequest:
        """The `count`-th request received, waiting up to `timeout` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no request #{count} within {timeout} s ({len(self.requests)} received)"
                    )
                self._arrived.wait(left)
            return self.requests[count - 1]

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> HttpReceiver:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def use_smtp(
    server: LiveServer,
    tenant_id: str,
    smtp: SmtpReceiver,
    *,
    sender: str = "Passgate Test <no-reply@passgate.example.com>",
    trust_ca: bool = True,
) -> None:
    """Send the tenant's email through `smtp` (its security and login; its CA trusted unless
    `trust_ca` is False, when the system's CAs are used and TLS must fail)."""

    async def work(db: Db) -> None:
        await config.configure_email(
            db,
            audit.cli_actor(),
            tenant_id,
            host=smtp.host,
            port=smtp.port,
            security=smtp.security,
            user=smtp.username or "",
            password=smtp.password,
            sender=sender,
            ca_pem=smtp.ca.pem if smtp.ca is not None and trust_ca else None,
            clear=() if trust_ca else ("caPem",),
        )

    server.run(work)


def use_sms_webhook(
    server: LiveServer, tenant_id: str, hook: HttpReceiver, path: str = "/sms"
) -> str:
    """Send the tenant's SMS and WhatsApp codes to `hook` (at `path`); returns the secret
    the requests are signed with (`x-signature-v2`, as push webhooks)."""

    async def work(db: Db) -> str:
        secret = config.new_webhook_secret()
        change = config.SmsChange(webhook_url=hook.url + path, webhook_secret=secret)
        await config.configure_sms(db, audit.cli_actor(), tenant_id, change)
        return secret

    return server.run(work)
