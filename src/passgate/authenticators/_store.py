"""Where a software authenticator keeps its credentials: one file, encrypted with Fernet
(AES-128-CBC + HMAC-SHA256) under a key derived by scrypt from a passphrase. Without a
passphrase a random key is kept beside the file (`<path>.key`, mode 0600): that protects
against a copied credentials file, not against someone who can read the whole directory.

The key is derived (or read from `<path>.key`) once per `CredentialFile` and kept in memory for
its lifetime: scrypt costs about 100 ms of CPU by design, and every ceremony rewrites the file
(a new credential, a sign count), so deriving it on each write made each ceremony that slow.
Every write is still encrypted under that key and replaces the file atomically."""

from __future__ import annotations

import base64
import json
import operator
import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from passgate.sdk._authenticator import AuthenticatorError, AuthenticatorErrorCode

FORMAT = "passgate-software-authenticator/1"


@dataclass(kw_only=True, slots=True)
class StoredCredential:
    credential_id: str  # base64url
    rp_id: str
    user_id: str  # base64url of the user handle bytes
    user_name: str | None
    display_name: str | None
    algorithm: int  # COSE
    private_key: str  # PKCS#8 PEM
    sign_count: int = 0
    created_at: float = 0.0


_FIELDS = tuple(item.name for item in fields(StoredCredential))
_values_of = operator.attrgetter(*_FIELDS)  # a credential's fields, in order, as a tuple


@dataclass(kw_only=True, slots=True)
class Vault:
    aaguid: str
    credentials: list[StoredCredential] = field(default_factory=list)


def _derive(passphrase: str, salt: bytes) -> bytes:
    key = Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase.encode())
    return base64.urlsafe_b64encode(key)


def _write_private(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class CredentialFile:
    def __init__(self, path: str | os.PathLike[str], passphrase: str | None) -> None:
        self.path = Path(path)
        self._passphrase = passphrase
        self._salt: bytes | None = None
        self._key: tuple[bytes, Fernet] | None = None  # (salt, the key derived with it)
        # Each credential's JSON as last written, by credential id, with the field values it
        # was made from: a write re-encodes only the credentials that changed.
        self._encoded: dict[str, tuple[tuple[Any, ...], str]] = {}
        self._directory_made = False

    def _fernet(self, salt: bytes) -> Fernet:
        if self._key is not None and self._key[0] == salt:
            return self._key[1]
        if self._passphrase is not None:
            fernet = Fernet(_derive(self._passphrase, salt))
        else:
            key_path = self.path.with_name(self.path.name + ".key")
            if not key_path.exists():
                _write_private(key_path, Fernet.generate_key())
            fernet = Fernet(key_path.read_bytes().strip())
        self._key = (salt, fernet)
        return fernet

    def load(self) -> Vault:
        if not self.path.exists():
            self._salt = secrets.token_bytes(16)
            return Vault(aaguid=secrets.token_hex(16))
        envelope = json.loads(self.path.read_text())
        if envelope.get("format") != FORMAT:
            raise AuthenticatorError(
                AuthenticatorErrorCode.SDK_ERROR, f"{self.path} is not a credentials file"
            )
        self._salt = base64.b64decode(envelope["salt"])
        try:
            plain = self._fernet(self._salt).decrypt(envelope["data"].encode())
        except InvalidToken as exc:
            raise AuthenticatorError(
                AuthenticatorErrorCode.SDK_ERROR,
                f"cannot decrypt {self.path}: wrong passphrase or key file",
            ) from exc
        data: dict[str, Any] = json.loads(plain)
        return Vault(
            aaguid=data["aaguid"],
            credentials=[StoredCredential(**item) for item in data["credentials"]],
        )

    def save(self, vault: Vault) -> None:
        salt = self._salt or secrets.token_bytes(16)
        self._salt = salt
        token = self._fernet(salt).encrypt(self._plain(vault).encode())
        # json.dumps of {"format", "kdf", "salt", "data"}, written out: the token is
        # URL-safe base64, which JSON needs no escapes for, and it is the bulk of the file.
        head = {
            "format": FORMAT,
            "kdf": "scrypt" if self._passphrase is not None else "keyfile",
            "salt": base64.b64encode(salt).decode(),
        }
        envelope = json.dumps(head)[:-1].encode() + b', "data": "' + token + b'"}'
        if not self._directory_made:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._directory_made = True
        _write_private(self.path, envelope)

    def _plain(self, vault: Vault) -> str:
        """The vault as json.dumps writes {"aaguid": ..., "credentials": [{field: value}, ...]}
        (fields in declaration order, default separators), from the credentials' cached JSON."""
        encoded: dict[str, tuple[tuple[Any, ...], str]] = {}
        parts = []
        for credential in vault.credentials:
            values = _values_of(credential)
            cached = self._encoded.get(credential.credential_id)
            if cached is None or cached[0] != values:
                cached = (values, json.dumps(dict(zip(_FIELDS, values, strict=True))))
            encoded[credential.credential_id] = cached
            parts.append(cached[1])
        self._encoded = encoded
        aaguid = json.dumps(vault.aaguid)
        return '{"aaguid": ' + aaguid + ', "credentials": [' + ", ".join(parts) + "]}"
