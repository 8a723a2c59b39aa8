"""The publishing service: one published batch from its body to the broker.

The HTTP handler (:mod:`streamgate.server.producer`) checks the producer key and calls
:meth:`Publisher.publish`; everything after that is here: parse, dedupe, the order-book
pre-check, the idempotency claim, the tenant-wide notice expansion, the broker publish,
the market directory and the webhook outbox. The data path reads one way: handler ->
publisher -> broker -> hub -> write queue -> socket. Nothing here imports ``server/``
or ``hub/``: a publish goes to the broker, never to the hub.
"""

from streamgate.publisher.markets import MarketDirectory
from streamgate.publisher.service import Publisher, PublishResult, PushOutbox

__all__ = ["MarketDirectory", "PublishResult", "Publisher", "PushOutbox"]
