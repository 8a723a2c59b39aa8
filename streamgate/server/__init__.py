"""HTTP + WebSocket transport: the only package that owns sockets."""

from streamgate.server.app import Gateway

__all__ = ["Gateway"]
