"""Push authentication: device credentials (P-256 keys), challenges decided once on a device,
and telling the device (long-poll wake-ups, webhook, APNs, FCM). Routes P1-P8, W1 and W2 are
in docs/wire.md#push-routes, the key encoding in docs/wire.md#push-device-keys."""
