"""Push authentication: device credentials (P-256 keys), challenges decided once on a device,
and telling the device (long-poll wake-ups, webhook, APNs, FCM). Routes P1-P8, W1 and W2 of docs/wire.md#push-routes; key encoding in docs/wire.md#push-device-keys."""
