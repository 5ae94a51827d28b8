"""Push authentication: device credentials (P-256 keys), challenges decided once on a device,
and telling the device (long-poll wake-ups, webhook, APNs, FCM). Spec §2.2 P1-P8, W1, W2, §3."""
