"""Webhooks, the pure parts: signing, retry schedule, target checks, body (PROTOCOL.md 1).

- :mod:`.signing`: Standard Webhooks secrets, signatures, headers and message ids.
- :mod:`.schedule`: retry delays with jitter and ``Retry-After``, disabling after 72 h.
- :mod:`.targets`: URL form and address checks against server-side request forgery.
- :mod:`.body`: the delivery body and per-endpoint event filters.

Nothing here opens a socket, except that :func:`~.targets.resolve_and_check` resolves a
host through its (injectable) resolver.
"""

from streamgate.webhooks.body import check_event_types, created_at, event_matches, webhook_body
from streamgate.webhooks.schedule import (
    DEFAULT_SCHEDULE,
    DELIVERY_TIMEOUT,
    DISABLE_AFTER,
    next_delay,
    parse_retry_after,
    parse_schedule,
    should_disable,
)
from streamgate.webhooks.signing import (
    headers,
    keyed_message_id,
    new_message_id,
    new_secret,
    sign,
)
from streamgate.webhooks.targets import (
    TargetRefused,
    TargetUnresolvable,
    check_url,
    resolve_and_check,
)

__all__ = [
    "DEFAULT_SCHEDULE",
    "DELIVERY_TIMEOUT",
    "DISABLE_AFTER",
    "TargetRefused",
    "TargetUnresolvable",
    "check_event_types",
    "check_url",
    "created_at",
    "event_matches",
    "headers",
    "keyed_message_id",
    "new_message_id",
    "new_secret",
    "next_delay",
    "parse_retry_after",
    "parse_schedule",
    "resolve_and_check",
    "should_disable",
    "sign",
    "webhook_body",
]
