"""The `--peer privacyidea` side of `passgate bench`: privacyIDEA 3.14 run locally as a peer.

`prepare_privacyidea(workdir)` installs privacyIDEA 3.14 and gunicorn into a venv of their own
inside `workdir`, writes its configuration (SQLite, encryption and audit keys, all in `workdir`),
creates the tables and an administrator, then starts the server once to add a flat-file user
store, a realm and the policies for poll-only push and for passkeys. It may be run again: what is
already there is kept.

`run_privacyidea(flow, seconds=..., concurrency=..., workdir=...)` starts the server under
gunicorn (one sync worker) on a loopback port, enrols one token per client (a push token answered
by a software phone holding an RSA key, or a passkey held by a software authenticator with a
P-256 key), drives the flow from `concurrency` client threads over plain HTTP for `seconds`
seconds, and reports throughput, latency and the server's CPU time per operation (from /proc,
the gunicorn master and its workers). Linux only.

What is installed and driven is described in docs/performance.md#the-privacyidea-peer.

    python -m passgate.bench.privacyidea --selftest [--workdir DIR] [--seconds 10]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from fido2 import cbor

PRIVACYIDEA_VERSION = "3.14"
FLOWS = ("push_round_trip", "passkey_sign_in")
# One user (and token) per client; the user store is written once with this many users.
MAX_CLIENTS = 64
REALM = "realm1"
ADMIN = "admin"
RP_ID = "localhost"
ORIGIN = "https://localhost"
WORKERS = 1
WARM_UP_OPS = 3
# After a response is sent, privacyIDEA still writes its audit and metrics rows; wait this long
# before reading the server's CPU time so that work lands in the right window.
SETTLE_SECONDS = 0.3


def _say(message: str) -> None:
    print(f"[privacyidea] {message}", flush=True)


# --- installation and configuration ---------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    workdir: Path

    @property
    def venv(self) -> Path:
        return self.workdir / "venv"

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def etc(self) -> Path:
        return self.workdir / "etc"

    @property
    def config(self) -> Path:
        return self.etc / "pi.cfg"

    @property
    def database(self) -> Path:
        return self.etc / "pi.sqlite"

    @property
    def admin_password(self) -> Path:
        return self.etc / "admin-password"

    @property
    def users(self) -> Path:
        return self.etc / "users.passwd"

    @property
    def configured(self) -> Path:
        # Written once the realm and policies are in the database.
        return self.etc / "configured"

    def env(self) -> dict[str, str]:
        return {**os.environ, "PRIVACYIDEA_CONFIGFILE": str(self.config)}


def _base_python() -> str:
    """The interpreter this venv was made from (so privacyIDEA runs on the same Python)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [
        getattr(sys, "_base_executable", None),
        str(Path(sys.base_prefix) / "bin" / version),
        shutil.which(version),
        shutil.which("python3"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("no python3 found to create the privacyIDEA venv with")


def _run(command: list[str], layout: _Layout, *, what: str) -> str:
    result = subprocess.run(
        command,
        cwd=layout.etc if layout.etc.exists() else layout.workdir,
        env=layout.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        lines = (result.stdout + result.stderr).strip().splitlines()
        # pip names its failure on ERROR lines, after one warning per unusable index location.
        errors = [line for line in lines if line.startswith("ERROR")]
        tail = "\n".join((errors or lines)[-15:])
        raise RuntimeError(f"privacyIDEA peer: {what} failed (exit {result.returncode}):\n{tail}")
    return result.stdout


def _installed_versions(layout: _Layout) -> tuple[str, str] | None:
    python = layout.bin / "python"
    if not python.exists():
        return None
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m; "
            "print(m.version('privacyidea'), m.version('gunicorn'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return None
    privacyidea, gunicorn = probe.stdout.split()
    return privacyidea, gunicorn


def _install(layout: _Layout) -> None:
    versions = _installed_versions(layout)
    if versions is not None and versions[0] == PRIVACYIDEA_VERSION:
        _say(f"privacyIDEA {versions[0]} and gunicorn {versions[1]} already in {layout.venv}")
        return
    if not (layout.bin / "python").exists():
        python = _base_python()
        _say(f"creating a venv in {layout.venv} with {python}")
        _run([python, "-m", "venv", str(layout.venv)], layout, what="creating the venv")
    _say(f"pip install privacyidea=={PRIVACYIDEA_VERSION} gunicorn (about 15 s, 500 MB)")
    started = time.monotonic()
    _run(
        [
            str(layout.bin / "pip"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"privacyidea=={PRIVACYIDEA_VERSION}",
            "gunicorn",
        ],
        layout,
        what=f"pip install privacyidea=={PRIVACYIDEA_VERSION} (is the package index reachable?)",
    )
    versions = _installed_versions(layout)
    if versions is None:
        raise RuntimeError("privacyIDEA peer: pip finished but privacyidea is not importable")
    _say(
        f"installed privacyIDEA {versions[0]} and gunicorn {versions[1]} "
        f"in {time.monotonic() - started:.1f} s"
    )


def _write_config(layout: _Layout) -> None:
    layout.etc.mkdir(parents=True, exist_ok=True)
    if layout.config.exists():
        _say(f"keeping {layout.config}")
        return
    etc = layout.etc
    settings: dict[str, Any] = {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{layout.database}",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "PI_PEPPER": secrets.token_urlsafe(24),
        "PI_ENCFILE": str(etc / "enckey"),
        "PI_AUDIT_KEY_PRIVATE": str(etc / "private.pem"),
        "PI_AUDIT_KEY_PUBLIC": str(etc / "public.pem"),
        "PI_AUDIT_SQL_TRUNCATE": True,
        "PI_LOGFILE": str(etc / "privacyidea.log"),
        "PI_LOGLEVEL": 20,
        # Without a node id it reads /etc/privacyidea/uuid.txt.
        "PI_NODE_UUID": str(uuid.uuid4()),
        "PI_NODE": "benchnode",
        "SUPERUSER_REALM": ["superuser"],
    }
    lines = ["# privacyIDEA configuration for the passgate bench peer (a Python file)."]
    lines += [f"{key} = {value!r}" for key, value in settings.items()]
    layout.config.write_text("\n".join(lines) + "\n")
    (etc / "piwsgi.py").write_text(
        "from privacyidea.app import create_app\n\n"
        f"application = create_app(config_name='production', config_file={str(layout.config)!r},"
        " silent=True)\n"
    )
    _say(f"wrote {layout.config} (SQLite at {layout.database}) and {etc / 'piwsgi.py'}")


def _setup_database(layout: _Layout) -> None:
    manage = str(layout.bin / "pi-manage")
    if not (layout.etc / "enckey").exists():
        _say("pi-manage setup create_enckey")
        _run([manage, "setup", "create_enckey"], layout, what="create_enckey")
    if not (layout.etc / "private.pem").exists():
        _say("pi-manage setup create_audit_keys")
        _run([manage, "setup", "create_audit_keys"], layout, what="create_audit_keys")
    if not _has_tables(layout.database):
        _say("pi-manage setup create_tables")
        _run([manage, "setup", "create_tables"], layout, what="create_tables")
        layout.configured.unlink(missing_ok=True)
    if not layout.admin_password.exists():
        layout.admin_password.write_text(secrets.token_urlsafe(18) + "\n")
        layout.admin_password.chmod(0o600)
    password = layout.admin_password.read_text().strip()
    admins = _run([manage, "admin", "list"], layout, what="admin list")
    if not any(line.split()[:1] == [ADMIN] for line in admins.splitlines()):
        _say(f"pi-manage admin add {ADMIN}")
        _run(
            [manage, "admin", "add", ADMIN, "-p", password, "-e", "admin@example.invalid"],
            layout,
            what="admin add",
        )
    if not layout.users.exists():
        layout.users.write_text(
            "".join(
                f"{_user(i)}:x:{2000 + i}:{2000 + i}:Bench User {i},,,:/nonexistent:/bin/false\n"
                for i in range(MAX_CLIENTS)
            )
        )
        _say(f"wrote {MAX_CLIENTS} users to {layout.users}")


def _has_tables(database: Path) -> bool:
    # Any pi-manage command makes an empty SQLite file, so look for a table.
    if not database.exists():
        return False
    with contextlib.closing(sqlite3.connect(database)) as connection:
        found = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'admin'"
        ).fetchone()
    return found is not None


def _user(index: int) -> str:
    return f"bench{index}"


def _policies(base_url: str) -> dict[str, dict[str, str]]:
    return {
        # Poll only: no Firebase; the phone asks the server for open challenges.
        "bench_push_enroll": {
            "scope": "enrollment",
            "active": "true",
            "action": (
                "push_firebase_configuration=poll only, "
                f"push_registration_url={base_url}/ttype/push, push_ssl_verify=0, push_ttl=10"
            ),
        },
        "bench_push_auth": {
            "scope": "authentication",
            "active": "true",
            "action": "push_allow_polling=allow, push_ssl_verify=0",
        },
        "bench_passkey_enroll": {
            "scope": "enrollment",
            "active": "true",
            "action": (
                f"webauthn_relying_party_id={RP_ID}, webauthn_relying_party_name=Passgate bench"
            ),
        },
    }


def _configure(layout: _Layout, client: _Http, admin: str) -> None:
    resolver = {"type": "passwdresolver", "fileName": str(layout.users)}
    client.call("POST", f"/resolver/{REALM}-users", admin, resolver)
    client.call("POST", f"/realm/{REALM}", admin, resolvers=f"{REALM}-users")
    client.call("POST", f"/defaultrealm/{REALM}", admin)
    for name, policy in _policies(client.base_url).items():
        client.call("POST", f"/policy/{name}", admin, policy)


def prepare_privacyidea(workdir: Path) -> None:
    """Install and configure privacyIDEA in `workdir`; safe to run again."""
    layout = _Layout(workdir.resolve())
    layout.workdir.mkdir(parents=True, exist_ok=True)
    _install(layout)
    _write_config(layout)
    _setup_database(layout)
    if layout.configured.exists():
        _say("user store, realm and policies already configured")
        return
    _say("starting privacyIDEA once to add the user store, realm and policies")
    with _server(layout) as server:
        client = _Http(server.port)
        admin = _admin_token(client, layout)
        _configure(layout, client, admin)
        client.close()
    layout.configured.write_text("resolver, realm, push (poll only) and passkey policies\n")
    _say(
        f"configured: passwd resolver with {MAX_CLIENTS} users, realm {REALM}, push enrolment "
        f"poll only, passkey relying party {RP_ID}"
    )


# --- the server process ---------------------------------------------------------------------


@dataclass
class _Server:
    process: subprocess.Popen[bytes]
    port: int
    gunicorn_version: str

    def cpu_seconds(self) -> float:
        """utime+stime of the gunicorn master and all its descendants (the workers)."""
        parents: dict[int, int] = {}
        times: dict[int, float] = {}
        tick = os.sysconf("SC_CLK_TCK")
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                raw = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # The command name may hold spaces; the fields after it are fixed.
            fields = raw[raw.rindex(")") + 2 :].split()
            parents[int(entry)] = int(fields[1])
            times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
        wanted = {self.process.pid}
        grew = True
        while grew:
            more = {pid for pid, parent in parents.items() if parent in wanted} - wanted
            wanted |= more
            grew = bool(more)
        return sum(times.get(pid, 0.0) for pid in wanted)

    def workers(self) -> int:
        return sum(
            1
            for entry in os.listdir("/proc")
            if entry.isdigit() and _parent_of(int(entry)) == self.process.pid
        )


def _parent_of(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2 :].split()[1])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def _server(layout: _Layout) -> Iterator[_Server]:
    if not (layout.bin / "gunicorn").exists() or not layout.config.exists():
        raise RuntimeError(
            f"privacyIDEA is not prepared in {layout.workdir}: run prepare_privacyidea first"
        )
    versions = _installed_versions(layout)
    gunicorn_version = versions[1] if versions else "?"
    port = _free_port()
    log = (layout.workdir / "gunicorn.log").open("ab")
    process = subprocess.Popen(
        [
            str(layout.bin / "gunicorn"),
            "--workers",
            str(WORKERS),
            "--worker-class",
            "sync",
            "--bind",
            f"127.0.0.1:{port}",
            "--timeout",
            "300",
            "--chdir",
            str(layout.etc),
            "piwsgi:application",
        ],
        cwd=layout.etc,
        env=layout.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    server = _Server(process, port, gunicorn_version)
    try:
        _wait_ready(server, layout)
        yield server
    finally:
        _stop(process)


def _wait_ready(server: _Server, layout: _Layout) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            connection.request("GET", "/healthz/")
            response = connection.getresponse()
            body = response.read()
            connection.close()
            if response.status == 200 and b"ready" in body:
                return
        except OSError:
            pass
        time.sleep(0.25)
    log = layout.workdir / "gunicorn.log"
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else ""
    raise RuntimeError(f"privacyIDEA did not become ready on 127.0.0.1:{server.port}:\n{tail}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # gunicorn stops its workers on TERM
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            # Our own session (start_new_session): the master and its workers.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


# --- HTTP -----------------------------------------------------------------------------------


class PeerError(RuntimeError):
    """privacyIDEA answered a step of a flow with something other than what it must."""


class _Http:
    """One keep-alive HTTP/1.1 connection to privacyIDEA on loopback, form-encoded requests."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self._connection: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def call(
        self,
        method: str,
        path: str,
        auth: str | None = None,
        form: Mapping[str, str] | None = None,
        *,
        origin: bool = False,
        **fields: str,
    ) -> dict[str, Any]:
        fields = {**(form or {}), **fields}
        headers = {"Accept": "application/json"}
        if auth:
            headers["PI-Authorization"] = auth
        if origin:
            headers["Origin"] = ORIGIN
        body: bytes | None = None
        if method == "GET":
            if fields:
                path = f"{path}?{urlencode(fields)}"
        else:
            body = urlencode(fields).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self._connection is None:
            self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            self._connection.request(method, path, body=body, headers=headers)
            response = self._connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        try:
            answer: dict[str, Any] = json.loads(raw)
        except ValueError as error:
            raise PeerError(
                f"{method} {path}: {response.status}, not JSON: {raw[:200]!r}"
            ) from error
        if response.status >= 400 or not answer.get("result", {}).get("status"):
            error_text = answer.get("result", {}).get("error", answer)
            raise PeerError(f"{method} {path.split('?')[0]}: {response.status} {error_text}")
        return answer


def _admin_token(client: _Http, layout: _Layout) -> str:
    password = layout.admin_password.read_text().strip()
    answer = client.call("POST", "/auth", username=ADMIN, password=password)
    token: str = answer["result"]["value"]["token"]
    return token


# --- the software phone (push) and the software authenticator (passkey) ---------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _Phone:
    """A privacyIDEA push token's phone: RSA-4096 key, PKCS#1 v1.5 / SHA-256, base32 signatures."""

    def __init__(self, client: _Http) -> None:
        self.client = client
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
        self.serial = ""
        self.server_key: rsa.RSAPublicKey | None = None

    def sign(self, message: str) -> str:
        signature = self.key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
        return base64.b32encode(signature).decode()

    def enrol(self, push_url: str) -> None:
        query = parse_qs(urlparse(push_url).query)
        self.serial = query["serial"][0]
        spki = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        answer = self.client.call(
            "POST",
            "/ttype/push",
            serial=self.serial,
            # Required even without Firebase.
            fbtoken="poll-only",
            pubkey=base64.urlsafe_b64encode(spki).decode(),
            enrollment_credential=query["enrollment_credential"][0],
        )
        # The token's server key: base64 (with newlines) of a PKCS#1 RSAPublicKey.
        encoded = answer["detail"]["public_key"].replace("\n", "")
        encoded = encoded.replace("-", "+").replace("_", "/")
        server_key = serialization.load_der_public_key(base64.b64decode(encoded))
        if not isinstance(server_key, rsa.RSAPublicKey):
            raise PeerError("the push token's server key is not RSA")
        self.server_key = server_key

    def poll(self) -> list[dict[str, Any]]:
        timestamp = datetime.now(UTC).isoformat()
        answer = self.client.call(
            "GET",
            "/ttype/push",
            serial=self.serial,
            timestamp=timestamp,
            signature=self.sign(f"{self.serial}|{timestamp}"),
        )
        challenges: list[dict[str, Any]] = answer["result"]["value"]
        assert self.server_key is not None
        for challenge in challenges:
            signed = "{nonce}|{url}|{serial}|{question}|{title}|{sslverify}".format(**challenge)
            if "require_presence" in challenge:
                signed += f"|{challenge['require_presence']}"
            # Raises InvalidSignature: a phone refuses a challenge it cannot verify.
            self.server_key.verify(
                base64.b32decode(challenge["signature"]),
                signed.encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        return challenges

    def approve(self, nonce: str) -> bool:
        answer = self.client.call(
            "POST",
            "/ttype/push",
            serial=self.serial,
            nonce=nonce,
            signature=self.sign(f"{nonce}|{self.serial}"),
        )
        return answer["result"]["value"] is True


class _Authenticator:
    """A software passkey: P-256, `none` attestation, discoverable, counter kept."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = secrets.token_bytes(32)
        self.counter = 0
        self.user_handle = ""

    @staticmethod
    def _client_data(kind: str, challenge: str) -> bytes:
        # privacyIDEA compares against the UTF-8 bytes of its base64url challenge *string*
        # (its web UI passes TextEncoder().encode(challenge)), not the bytes it decodes to.
        return json.dumps(
            {
                "type": kind,
                "challenge": _b64url(challenge.encode()),
                "origin": ORIGIN,
                "crossOrigin": False,
            }
        ).encode()

    def create(self, options: dict[str, Any]) -> dict[str, str]:
        self.user_handle = options["user"]["id"]
        numbers = self.key.public_key().public_numbers()
        cose_key = cbor.encode(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )
        authenticator_data = (
            hashlib.sha256(RP_ID.encode()).digest()
            + bytes([0x45])  # UP, UV, AT
            + struct.pack(">I", self.counter)
            + bytes(16)
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + cose_key
        )
        attestation = cbor.encode({"fmt": "none", "attStmt": {}, "authData": authenticator_data})
        return {
            "credential_id": _b64url(self.credential_id),
            "rawId": _b64url(self.credential_id),
            "authenticatorAttachment": "platform",
            "attestationObject": _b64url(attestation),
            "clientDataJSON": _b64url(self._client_data("webauthn.create", options["challenge"])),
        }

    def get(self, challenge: str) -> dict[str, str]:
        self.counter += 1
        client_data = self._client_data("webauthn.get", challenge)
        authenticator_data = (
            hashlib.sha256(RP_ID.encode()).digest()
            + bytes([0x05])  # UP, UV
            + struct.pack(">I", self.counter)
        )
        signature = self.key.sign(
            authenticator_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "credential_id": _b64url(self.credential_id),
            "authenticatorData": _b64url(authenticator_data),
            "clientDataJSON": _b64url(client_data),
            "signature": _b64url(signature),
            "userHandle": self.user_handle,
        }


# --- the flows ------------------------------------------------------------------------------


def _delete_tokens(client: _Http, admin: str) -> int:
    deleted = 0
    while True:
        answer = client.call("GET", "/token/", admin, pagesize="1000")
        tokens = answer["result"]["value"]["tokens"]
        if not tokens:
            return deleted
        for token in tokens:
            client.call("DELETE", f"/token/{token['serial']}", admin)
            deleted += 1


def _push_client(client: _Http, admin: str, user: str) -> Callable[[], None]:
    """Enrols a poll-only push token for `user`; returns one round trip."""
    enrolled = client.call(
        "POST", "/token/init", admin, type="push", genkey="1", user=user, realm=REALM
    )
    phone = _Phone(client)
    phone.enrol(enrolled["detail"]["pushurl"]["value"])

    def round_trip() -> None:
        # The relying party's backend asks for a push to the user's phone...
        triggered = client.call("POST", "/validate/triggerchallenge", admin, user=user, realm=REALM)
        transaction = triggered["detail"]["transaction_id"]
        # ...the phone polls, verifies and approves...
        challenges = phone.poll()
        if not challenges:
            raise PeerError("the phone found no open challenge")
        if not all([phone.approve(challenge["nonce"]) for challenge in challenges]):
            raise PeerError("the server refused the phone's approval")
        # ...the backend sees the answer and completes the authentication.
        polled = client.call("GET", "/validate/polltransaction", transaction_id=transaction)
        if polled["result"]["value"] is not True:
            raise PeerError(f"polltransaction: {polled['result']}")
        check = {"user": user, "realm": REALM, "transaction_id": transaction, "pass": ""}
        checked = client.call("POST", "/validate/check", None, check)
        if checked["result"].get("authentication") != "ACCEPT":
            raise PeerError(f"validate/check after approval: {checked['result']}")

    return round_trip


def _passkey_client(client: _Http, admin: str, user: str) -> Callable[[], None]:
    """Registers a passkey for `user`; returns one usernameless sign-in."""
    started = client.call(
        "POST", "/token/init", admin, origin=True, type="passkey", user=user, realm=REALM
    )
    detail = started["detail"]
    authenticator = _Authenticator()
    client.call(
        "POST",
        "/token/init",
        admin,
        authenticator.create(detail["passkey_registration"]),
        origin=True,
        type="passkey",
        serial=detail["serial"],
        transaction_id=detail["transaction_id"],
        user=user,
        realm=REALM,
    )

    def sign_in() -> None:
        initialized = client.call("POST", "/validate/initialize", origin=True, type="passkey")
        request = initialized["detail"]["passkey"]
        checked = client.call(
            "POST",
            "/validate/check",
            None,
            authenticator.get(request["challenge"]),
            origin=True,
            transaction_id=request["transaction_id"],
        )
        result = checked["result"]
        if result.get("authentication") != "ACCEPT" or checked["detail"].get("username") != user:
            raise PeerError(f"passkey validate/check: {result} {checked.get('detail')}")

    return sign_in


@dataclass
class _Worker:
    operation: Callable[[], None]
    client: _Http
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    finished: float = 0.0

    def run(self, barrier: threading.Barrier, deadline: list[float]) -> None:
        barrier.wait()
        while (started := time.perf_counter()) < deadline[0]:
            try:
                self.operation()
            except Exception as error:
                self.errors += 1
                if self.first_error is None:
                    self.first_error = f"{type(error).__name__}: {error}"
                time.sleep(0.05)
                continue
            self.latencies.append(time.perf_counter() - started)
        self.finished = time.perf_counter()


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


def run_privacyidea(
    flow: str, *, seconds: float, concurrency: int, workdir: Path
) -> dict[str, Any]:
    """Drive `flow` against a fresh privacyIDEA server process for `seconds`; see the module doc."""
    if flow not in FLOWS:
        raise ValueError(f"unknown flow {flow!r}; privacyIDEA runs {', '.join(FLOWS)}")
    if not 1 <= concurrency <= MAX_CLIENTS:
        raise ValueError(f"concurrency must be 1..{MAX_CLIENTS} for the privacyIDEA peer")
    layout = _Layout(workdir.resolve())
    if not layout.configured.exists():
        raise RuntimeError(
            f"privacyIDEA is not prepared in {layout.workdir}: run prepare_privacyidea first"
        )
    with _server(layout) as server:
        _say(f"gunicorn pid {server.process.pid} on 127.0.0.1:{server.port}")
        setup = _Http(server.port)
        admin = _admin_token(setup, layout)
        # The push registration URL names this run's port.
        for name, policy in _policies(setup.base_url).items():
            setup.call("POST", f"/policy/{name}", admin, policy)
        removed = _delete_tokens(setup, admin)
        setup.close()
        if removed:
            _say(f"deleted {removed} tokens left from an earlier run")
        make = _push_client if flow == "push_round_trip" else _passkey_client
        kind = "push token" if flow == "push_round_trip" else "passkey"
        _say(f"enrolling {concurrency} {kind}{'s' if concurrency > 1 else ''}")
        workers: list[_Worker] = []
        for index in range(concurrency):
            client = _Http(server.port)
            operation = make(client, admin, _user(index))
            for _ in range(WARM_UP_OPS):
                operation()
            workers.append(_Worker(operation, client))
        worker_count = server.workers()
        barrier = threading.Barrier(concurrency + 1)
        deadline = [float("inf")]
        threads = [
            threading.Thread(target=worker.run, args=(barrier, deadline), daemon=True)
            for worker in workers
        ]
        for thread in threads:
            thread.start()
        time.sleep(SETTLE_SECONDS)
        cpu_before = server.cpu_seconds()
        started = time.perf_counter()
        deadline[0] = started + seconds
        barrier.wait()
        for thread in threads:
            thread.join()
        elapsed = max(worker.finished for worker in workers) - started
        time.sleep(SETTLE_SECONDS)
        cpu_used = server.cpu_seconds() - cpu_before
        for worker in workers:
            worker.client.close()
    latencies = sorted(latency for worker in workers for latency in worker.latencies)
    ops = len(latencies)
    errors = sum(worker.errors for worker in workers)
    for worker in workers:
        if worker.first_error:
            _say(f"first error of a client: {worker.first_error}")
    flow_line = (
        "push round trip = triggerchallenge (admin) + phone poll + phone approve "
        "+ polltransaction + validate/check"
        if flow == "push_round_trip"
        else "passkey sign-in = validate/initialize + validate/check (usernameless, P-256)"
    )
    config = (
        f"privacyIDEA {PRIVACYIDEA_VERSION} under gunicorn {server.gunicorn_version}, "
        f"{worker_count} sync worker{'s' if worker_count != 1 else ''}, SQLite, "
        "push poll only (RSA-4096 keys), SQL audit with signed entries and signed responses "
        f"(defaults); {flow_line}"
    )
    return {
        "ops_per_second": ops / elapsed if elapsed > 0 else 0.0,
        "server_cpu_us_per_op": cpu_used * 1e6 / ops if ops else 0.0,
        "errors": errors,
        "ops": ops,
        "latency_ms": {
            "p50": _percentile(latencies, 0.50) * 1000,
            "p95": _percentile(latencies, 0.95) * 1000,
            "p99": _percentile(latencies, 0.99) * 1000,
        },
        "config": config,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m passgate.bench.privacyidea",
        description="Install privacyIDEA locally and drive both flows against it.",
    )
    parser.add_argument("--selftest", action="store_true", help="prepare, then run both flows")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/passgate-bench-privacyidea"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=1)
    arguments = parser.parse_args(argv)
    if not arguments.selftest:
        parser.print_help()
        return 2
    prepare_privacyidea(arguments.workdir)
    failed = False
    for flow in FLOWS:
        result = run_privacyidea(
            flow,
            seconds=arguments.seconds,
            concurrency=arguments.concurrency,
            workdir=arguments.workdir,
        )
        print(json.dumps({"flow": flow, **result}, indent=2), flush=True)
        failed = failed or result["ops"] == 0 or result["errors"] > 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
