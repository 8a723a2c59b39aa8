"""Which webhook URLs the gateway may call (PROTOCOL.md section 1, Webhooks).

A tenant chooses the URL and the gateway makes the request, from inside the operator's
network: left unchecked, a webhook could reach the gateway's own admin ports, a cloud
metadata service (169.254.169.254) or any private host (server-side request forgery).

:func:`check_url` checks the URL's form when an endpoint is created. Before every
delivery, :func:`resolve_and_check` resolves the host and refuses the target if *any* of
its addresses is not a public unicast address (:func:`address_refusal`): loopback,
private, shared (100.64/10), link-local, multicast, reserved, unspecified, documentation
and the other special-purpose ranges; IPv6 forms that carry an IPv4 address (mapped
``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``, Teredo) are judged by
that address. The caller connects to one of the addresses returned, never resolving the
name again, so DNS cannot answer differently between the check and the connection
(rebinding). ``allow_private`` (``STREAMGATE_WEBHOOKS_ALLOW_LOOPBACK=1``; tests, local
development) skips the address check, not the URL check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeAlias
from urllib.parse import SplitResult, urlsplit

from streamgate.errors import StreamgateError

__all__ = [
    "DEFAULT_PORTS",
    "MAX_URL_LENGTH",
    "Resolver",
    "TargetRefused",
    "TargetUnresolvable",
    "address_refusal",
    "check_url",
    "resolve_and_check",
    "system_resolver",
]

MAX_URL_LENGTH: Final = 2048
DEFAULT_PORTS: Final = {"http": 80, "https": 443}

Resolver: TypeAlias = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port) -> addresses`` as strings; raises :class:`OSError` when it cannot."""

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class TargetRefused(StreamgateError):
    """A webhook URL the gateway will not call; ``reason`` says why (safe to show)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TargetUnresolvable(TargetRefused):
    """The host did not resolve (now): refused at creation, a failed attempt at delivery."""


def check_url(url: str) -> str:
    """Check a webhook URL's form and return it unchanged.

    An absolute ``http`` or ``https`` URL of at most :data:`MAX_URL_LENGTH` characters,
    ASCII without spaces or control characters (IDN hosts in their ``xn--`` form), with
    a host, no ``user:password@``, and a port, if any, within 1..65535. An IPv4 host is
    written as a dotted quad: ``127.1``, ``0x7f000001`` and other forms that resolvers
    read as numbers are refused, as is an IPv6 literal with a zone (``%eth0``).

    Raises:
        TargetRefused: the URL breaks one of these rules.
    """
    _split_checked(url)
    return url


def _split_checked(url: str) -> SplitResult:
    if not isinstance(url, str) or not url:
        raise TargetRefused("url must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"url is longer than {MAX_URL_LENGTH} characters")
    # urlsplit silently drops tabs and newlines; refuse them (and all else unprintable).
    if not all("!" <= c <= "~" for c in url):
        raise TargetRefused("url must be ASCII without spaces (IDN hosts as xn--)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"url is malformed: {exc}") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise TargetRefused("url scheme must be http or https")
    if "@" in parts.netloc:
        raise TargetRefused("url must not contain user information (user:password@)")
    host = parts.hostname
    if not host:
        raise TargetRefused("url has no host")
    if port == 0:  # 1..65535; urlsplit has already refused the rest
        raise TargetRefused("url port must be within 1..65535")
    if parts.netloc.startswith("["):
        if "%" in host:
            raise TargetRefused("url IPv6 host must not carry a zone")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise TargetRefused("url host is not a valid IPv6 address") from None
        return parts
    if not set(host) <= _HOST_CHARS or ".." in host or host.startswith((".", "-")):
        raise TargetRefused("url host is not a valid host name")
    if _is_numeric_host(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise TargetRefused("url IPv4 host must be a dotted quad such as 192.0.2.1") from None
    return parts


def _is_numeric_host(host: str) -> bool:
    # A name whose last label is numeric cannot be a DNS name (RFC 1123 section 2.1 as
    # read by RFC 3696): resolvers take such hosts, and inet_aton forms, as addresses.
    last = host.rstrip(".").rsplit(".", 1)[-1]
    if last.isdigit():
        return True
    try:
        socket.inet_aton(host)  # pure parsing: "0x7f.1", "017700000001", ...
    except OSError:
        return False
    return True


def address_refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be a webhook target, or None for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            return f"{address} is scoped (link-local)"
        embedded: IPAddress | None = address.ipv4_mapped
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:  # only a way of writing an IPv4 address
            reason = address_refusal(embedded)
            return None if reason is None else f"{address} embeds {reason}"
        tunnelled = address.sixtofour or (address.teredo[1] if address.teredo else None)
        if tunnelled is not None and (reason := address_refusal(tunnelled)) is not None:
            return f"{address} embeds {reason}"
    for flag, kind in (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (not address.is_global, "not globally routable"),
    ):
        if flag:
            return f"{address} is {kind}"
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the event loop's ``getaddrinfo`` (TCP); :class:`OSError` on failure."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve_and_check(
    url: str, *, allow_private: bool, resolver: Resolver = system_resolver
) -> list[str]:
    """Check ``url``, resolve its host and return its addresses, each once, in order.

    An IP literal host is its own single address (the resolver is not asked). Unless
    ``allow_private``, every address must pass :func:`address_refusal`: one bad address
    refuses the whole target, since the connection could use any of them.

    Raises:
        TargetRefused: the URL's form (:func:`check_url`), or an address.
        TargetUnresolvable: the resolver failed or found no address.
    """
    parts = _split_checked(url)
    host = parts.hostname
    assert host is not None  # _split_checked refuses a URL without one
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        found: Sequence[str] = [str(literal)]
    else:
        try:
            found = await resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise TargetUnresolvable(f"cannot resolve {host}: {exc}") from None
    addresses = list(dict.fromkeys(found))
    if not addresses:
        raise TargetUnresolvable(f"{host} has no address")
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise TargetRefused(f"{host} resolved to {text!r}, not an IP address") from None
        if allow_private:
            continue
        reason = address_refusal(address)
        if reason is not None:
            raise TargetRefused(f"{host} is refused: {reason}")
    return addresses
