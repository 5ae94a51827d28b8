"""Passgate: self-hostable passkey and push authentication that speaks the Authsignal API.

`pip install passgate` is the client SDK; `pip install "passgate[server]"` adds the server.
"""

from passgate._version import __version__

__all__ = ["__version__"]
