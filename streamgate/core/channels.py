"""Channel names: the hub's keys for streams, independent of any wire protocol.

A market channel is named like the producer's market topic (``orderbook/<market>``,
``trade/<market>``, ``ticker/<market>``); other kinds get a prefix that no market
topic can take: ``user:<id>:<kind>`` (private stream), ``push:<tenant>:<sub_user>``
(push protocol). Each channel is one offset stream (PROTOCOL.md section 3).
"""

from __future__ import annotations

from streamgate.core.identifiers import is_sub_user, is_tenant_name

__all__ = [
    "BOOK_PREFIX",
    "MARKET_KINDS",
    "PRIVATE_KINDS",
    "PUSH_PREFIX",
    "TOPIC_KINDS",
    "channel_kind",
    "is_book_channel",
    "is_push_channel",
    "is_push_tenant_wide",
    "market_channel",
    "market_of",
    "private_channel",
    "private_kind",
    "push_channel",
    "push_sub_user",
    "push_tenant",
    "push_tenant_prefix",
]

MARKET_KINDS = ("orderbook", "trade", "ticker")
PRIVATE_KINDS = ("order", "fill", "position")
_USER_PREFIX = "user:"
BOOK_PREFIX = "orderbook/"
PUSH_PREFIX = "push:"
# Every value :func:`channel_kind` returns: a bounded set, fit for a metrics label.
TOPIC_KINDS = (*MARKET_KINDS, *PRIVATE_KINDS, "push", "other")


def market_channel(kind: str, market: str) -> str:
    """Return the channel of one market topic kind (``orderbook``, ``trade``, ``ticker``)."""
    return f"{kind}/{market}"


def channel_kind(channel: str) -> str:
    """Return the topic kind of a channel, one of :data:`TOPIC_KINDS` (never its name)."""
    if channel.startswith(PUSH_PREFIX):
        return "push"
    if channel.startswith(_USER_PREFIX):
        kind = channel.rsplit(":", 1)[1]
        return kind if kind in PRIVATE_KINDS else "other"
    kind = channel.split("/", 1)[0]
    return kind if kind in MARKET_KINDS and "/" in channel else "other"


def is_book_channel(channel: str) -> bool:
    return channel.startswith(BOOK_PREFIX)


def market_of(channel: str) -> str:
    """Return the market address of a market channel."""
    return channel.split("/", 1)[1]


def private_channel(user_id: str, kind: str) -> str:
    """Return one user's channel of a private kind (``order``, ``fill``, ``position``).

    ``user:<id>:<kind>``: the colon never appears in a market topic's first part, so no
    private channel can collide with a market channel.
    """
    return f"{_USER_PREFIX}{user_id}:{kind}"


def private_kind(channel: str) -> str:
    """Return the private kind of a channel made by :func:`private_channel`."""
    return channel.rsplit(":", 1)[1]


# -- push channels (PROTOCOL.md section 1: one stream per sub-user of one tenant) --------


def push_tenant_prefix(tenant: str) -> str:
    """Return ``push:<tenant>:``, the prefix every push channel of ``tenant`` starts with.

    No other tenant's channel starts with it (a tenant name has no ``:``). As a channel
    of its own it stands for "every connected sub-user of the tenant" (a tenant-wide
    ``system.notice``): no socket subscribes to it, the publisher expands it (with the
    cluster-wide ``Presence.members``) into one :func:`push_channel` per sub-user.

    Raises:
        ValueError: ``tenant`` is not a valid tenant name.
    """
    if not is_tenant_name(tenant):
        raise ValueError(f"not a tenant name: {tenant!r}")
    return f"{PUSH_PREFIX}{tenant}:"


def push_channel(tenant: str, sub_user: str) -> str:
    """Return the push channel of one sub-user of one tenant: ``push:<tenant>:<sub_user>``.

    ``push:`` is no market kind and not ``user:``, so no push channel collides with a
    market or private channel; the same sub-user id under two tenants gives two channels.

    Raises:
        ValueError: ``tenant`` is not a valid tenant name, or ``sub_user`` is not a
            sub-user id (:func:`~streamgate.core.identifiers.is_sub_user`).
    """
    if not is_sub_user(sub_user):
        raise ValueError(f"not a push sub-user id: {sub_user!r}")
    return push_tenant_prefix(tenant) + sub_user


def is_push_channel(channel: str) -> bool:
    """Tell whether ``channel`` is a push channel, one sub-user's or a tenant-wide one."""
    return channel.startswith(PUSH_PREFIX)


def is_push_tenant_wide(channel: str) -> bool:
    """Tell whether ``channel`` is a :func:`push_tenant_prefix` (to be expanded, not served)."""
    return is_push_channel(channel) and channel.endswith(":")


def push_tenant(channel: str) -> str:
    """Return the tenant of a push channel (or of a tenant-wide prefix)."""
    return channel.split(":", 2)[1]


def push_sub_user(channel: str) -> str:
    """Return the sub-user id of a :func:`push_channel` (``""`` for a tenant-wide prefix)."""
    return channel.split(":", 2)[2]
