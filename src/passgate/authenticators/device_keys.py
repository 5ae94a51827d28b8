"""Push device keys: P-256 private keys that never leave the device. Implements the SDK's
`DeviceKeys` protocol (load, create, delete) over a PEM file or the OS keyring."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from passgate.sdk._push_protocol import DeviceKeys

KEYRING_SERVICE = "passgate-push"


def _generate() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _to_pem(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _from_pem(pem: bytes, passphrase: bytes | None) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=passphrase)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the stored device key is not a P-256 key")
    return key


class DeviceKeyStore:
    """The device key in a PKCS#8 PEM file, readable only by its owner (mode 0600). With a
    `passphrase` the file is encrypted (cryptography's best available PKCS#8 encryption);
    without one it is stored in the clear, like an unencrypted SSH key."""

    def __init__(self, path: str | os.PathLike[str], passphrase: str | bytes | None = None) -> None:
        self.path = Path(path).expanduser()
        self._passphrase = passphrase.encode() if isinstance(passphrase, str) else passphrase

    def __repr__(self) -> str:
        return f"DeviceKeyStore({str(self.path)!r}, encrypted={self._passphrase is not None})"

    def load(self) -> ec.EllipticCurvePrivateKey | None:
        try:
            pem = self.path.read_bytes()
        except FileNotFoundError:
            return None
        return _from_pem(pem, self._passphrase)

    def create(self) -> ec.EllipticCurvePrivateKey:
        """A new key, written atomically: a crash never leaves half a key behind."""
        key = _generate()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor, scratch = tempfile.mkstemp(dir=self.path.parent, prefix=".device-key-")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(_to_pem(key, self._passphrase))
            os.chmod(scratch, 0o600)
            os.replace(scratch, self.path)
        except BaseException:
            Path(scratch).unlink(missing_ok=True)
            raise
        return key

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


class KeyringDeviceKeyStore:
    """The device key in the OS keyring (macOS Keychain, Windows Credential Locker, Secret
    Service), via `keyring`, under one entry per tenant and server."""

    def __init__(self, name: str, *, service: str = KEYRING_SERVICE) -> None:
        self.name = name
        self.service = service

    def __repr__(self) -> str:
        return f"KeyringDeviceKeyStore({self.name!r})"

    def load(self) -> ec.EllipticCurvePrivateKey | None:
        import keyring

        pem = keyring.get_password(self.service, self.name)
        return _from_pem(pem.encode(), None) if pem else None

    def create(self) -> ec.EllipticCurvePrivateKey:
        import keyring

        key = _generate()
        keyring.set_password(self.service, self.name, _to_pem(key, None).decode())
        return key

    def delete(self) -> None:
        import keyring
        from keyring.errors import PasswordDeleteError

        with contextlib.suppress(PasswordDeleteError):
            keyring.delete_password(self.service, self.name)


def keyring_available() -> bool:
    """True when `keyring` found a real backend (not the 'fail' one of a headless box)."""
    try:
        import keyring
    except ImportError:
        return False
    return bool(keyring.get_keyring().priority > 0)


def default_path(tenant_id: str) -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "passgate" / f"device-{tenant_id}.pem"


def default_device_keys(tenant_id: str, base_url: str) -> DeviceKeys:
    """The OS keyring where there is one; else a file under `~/.config/passgate/`."""
    if keyring_available():
        return KeyringDeviceKeyStore(f"{tenant_id}@{base_url}")
    return DeviceKeyStore(default_path(tenant_id))
