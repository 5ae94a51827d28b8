"""The length of every text column that request input reaches, in one place: the column
(store/tables.py `String(N)`) and the request's checks (`max_length` in the wire schemas and
the routes' path parameters) both use these names, so a value the schema lets through always
fits and PostgreSQL never answers a long one with a 500 (tests/store/test_column_limits.py
checks every column against the fields that write it). Neither the store's nor the routes':
both layers read it.

Changing one here changes the schema: add a migration."""

from __future__ import annotations

# Ids we make (UUIDs); a request may name one, and then it is looked up, not stored as sent.
ID = 36
# Authsignal's limits for what a backend or app names.
USER_ID = 255
ACTION_CODE = 100
# What an action code may hold: it is a path segment of the Server API, so a client's C1 is
# held to the same rule as a backend's track.
ACTION_CODE_PATTERN = rf"^[A-Za-z0-9_.:\-]{{1,{ACTION_CODE}}}$"
IDEMPOTENCY_KEY = 255
EMAIL = 320
PHONE_NUMBER = 32
USERNAME = 255
DISPLAY_NAME = 255
LOCALE = 35
IP_ADDRESS = 64
USER_AGENT = 1024
DEVICE_ID = 255
SCOPE = 255
REDIRECT_URL = 2048
# Push devices (P2, P6).
DEVICE_NAME = 255
DEVICE_PLATFORM = 32
PUSH_TOKEN = 4096
# Passkeys: the credential id as base64url (1023 bytes at most, by WebAuthn), and the name an
# operator gives one in the console.
CREDENTIAL_ID = 1400
PASSKEY_NAME = 100
AUTHENTICATOR_ATTACHMENT = 32
# A tenant's name and its relying party's name (the console, the CLI).
TENANT_NAME = 200
