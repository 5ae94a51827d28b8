"""Where the push key lives: an (encrypted) PEM file, or the OS keyring."""

from __future__ import annotations

import stat
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from passgate.authenticators import DeviceKeyStore, KeyringDeviceKeyStore, default_device_keys
from passgate.sdk._push_protocol import public_key_base64


def test_file_store_round_trip_encrypted(tmp_path: Path) -> None:
    store = DeviceKeyStore(tmp_path / "keys" / "device.pem", passphrase="s3cret")
    assert store.load() is None
    key = store.create()
    assert public_key_base64(store.load()) == public_key_base64(key)  # type: ignore[arg-type]
    text = store.path.read_text()
    assert "ENCRYPTED PRIVATE KEY" in text
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    with pytest.raises((ValueError, TypeError)):
        DeviceKeyStore(store.path, passphrase="wrong").load()
    with pytest.raises(TypeError):
        DeviceKeyStore(store.path).load()
    store.delete()
    store.delete()  # twice is fine
    assert store.load() is None


def test_file_store_without_passphrase(tmp_path: Path) -> None:
    store = DeviceKeyStore(tmp_path / "device.pem")
    store.create()
    assert "BEGIN PRIVATE KEY" in store.path.read_text()
    assert store.load() is not None


class MemoryKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.entries:
            from keyring.errors import PasswordDeleteError

            raise PasswordDeleteError(username)
        del self.entries[(service, username)]


def test_keyring_store_and_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    previous = keyring.get_keyring()
    memory = MemoryKeyring()
    keyring.set_keyring(memory)
    try:
        store = default_device_keys("tenant-1", "http://127.0.0.1:8000/v1")
        assert isinstance(store, KeyringDeviceKeyStore)
        key = store.create()
        assert public_key_base64(store.load()) == public_key_base64(key)  # type: ignore[arg-type]
        assert list(memory.entries) == [("passgate-push", "tenant-1@http://127.0.0.1:8000/v1")]
        store.delete()
        store.delete()
        assert store.load() is None
        # Without a usable keyring (a headless box): a file under XDG_CONFIG_HOME.
        keyring.set_keyring(fail.Keyring())
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
        fallback = default_device_keys("tenant-1", "http://127.0.0.1:8000/v1")
    finally:
        keyring.set_keyring(previous)
    assert isinstance(fallback, DeviceKeyStore)
    assert fallback.path == tmp_path / "passgate" / "device-tenant-1.pem"
