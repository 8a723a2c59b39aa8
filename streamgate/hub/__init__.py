"""The hub: this node's channels and subscribers, fan-out, write queues. No wire format."""

from streamgate.hub.hub import Catchup, Encoder, Hub, HubStats, Subscriber
from streamgate.hub.queue import WriteQueue

__all__ = ["Catchup", "Encoder", "Hub", "HubStats", "Subscriber", "WriteQueue"]
