"""The admin console's own accounts: admins (`accounts`), their signed-in sessions
(`sessions`) and their passkey ceremonies on Passgate's own relying party (`ceremonies`)."""
