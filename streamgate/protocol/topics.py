"""Topic grammar of the stream protocol (PROTOCOL.md section 2).

The patterns are the document's, matched against the whole topic (JavaScript
``^...$`` semantics: no trailing newline slips through as it would with ``re.match``).
"""

from __future__ import annotations

import re

__all__ = [
    "PRIVATE_TOPIC",
    "PUBLIC_TOPIC",
    "has_latest_value",
    "is_private_topic",
    "is_public_topic",
]

# JavaScript's \s (ECMAScript WhiteSpace + LineTerminator), not Python's: the patterns
# come from a TypeScript SDK. Python's \s also holds U+001C..U+001F and U+0085 and
# lacks U+FEFF.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
PUBLIC_TOPIC = re.compile(f"(orderbook|trade|ticker)/[^/{_JS_SPACE}]+")
PRIVATE_TOPIC = re.compile(r"(order|fill|position)")


def is_public_topic(topic: str) -> bool:
    return PUBLIC_TOPIC.fullmatch(topic) is not None


def is_private_topic(topic: str) -> bool:
    return PRIVATE_TOPIC.fullmatch(topic) is not None


def has_latest_value(topic: str) -> bool:
    """True for topics whose subscribe starts with the latest event (PROTOCOL.md section 3,
    "Latest value", extension): a ticker is a value, not a stream of changes."""
    return topic.startswith("ticker/")
