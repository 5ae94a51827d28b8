"""The Passgate server: Authsignal's Client API and Server API over one database.

Needs the `server` extra: `pip install "passgate[server]"`.
"""
