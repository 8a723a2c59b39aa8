"""Brokers: where publications are numbered, kept and distributed (memory, redis)."""

from streamgate.brokers.base import Broker, BrokerHandler, IdempotencyStore, Outgoing
from streamgate.brokers.idempotency_memory import MemoryIdempotency
from streamgate.brokers.memory import MemoryBroker

__all__ = [
    "Broker",
    "BrokerHandler",
    "IdempotencyStore",
    "MemoryBroker",
    "MemoryIdempotency",
    "Outgoing",
]
