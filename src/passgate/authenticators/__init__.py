"""Where client-side keys live. For push: the device's P-256 key, in the OS keyring or in a
(passphrase-encrypted) file."""

from passgate.authenticators.device_keys import (
    DeviceKeyStore,
    KeyringDeviceKeyStore,
    default_device_keys,
)

__all__ = ["DeviceKeyStore", "KeyringDeviceKeyStore", "default_device_keys"]
