"""The Passgate client SDK: Authsignal's Flutter SDK, in Python. Import from `passgate`.

`_async/` is the source; `_sync/` is generated from it by `scripts/generate_sync.py`
(never edit `_sync/` by hand: the test suite fails when it drifts)."""
