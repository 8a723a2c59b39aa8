"""Topics and bytes: channels, subscribers, fan-out, history, order books. No wire format."""

from streamgate.hub.books import Books, OrderBook
from streamgate.hub.history import StreamHistory, new_epoch
from streamgate.hub.hub import Catchup, Encoder, Hub, HubStats, Subscriber
from streamgate.hub.publication import Publication, StreamPosition
from streamgate.hub.queue import WriteQueue

__all__ = [
    "Books",
    "Catchup",
    "Encoder",
    "Hub",
    "HubStats",
    "OrderBook",
    "Publication",
    "StreamHistory",
    "StreamPosition",
    "Subscriber",
    "WriteQueue",
    "new_epoch",
]
