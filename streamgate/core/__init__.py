"""The vocabulary every layer shares: channels, publications, identifiers, book wire names.

Nothing here imports another part of streamgate but :mod:`streamgate.errors`, so hub,
brokers, protocol, server, venue and SDK can all use it without depending on each other.
"""

from streamgate.core.publication import Publication, StreamPosition

__all__ = ["Publication", "StreamPosition"]
