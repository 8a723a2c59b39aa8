"""The identifier rules, one each: tenant names, user ids, sub-user ids.

A tenant name is what an API key is minted for and what producers put in push events:
1..64 of ``A-Z a-z 0-9 _ . -``. User ids (private events) and sub-user ids (push events,
``On-Behalf-Of``) take any format, since platforms choose them, but become part of a
channel name, so none holds ``:``, whitespace, a control or an invisible format character.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "MAX_SUB_USER",
    "MAX_USER_ID",
    "TENANT_RULE",
    "id_problem",
    "is_sub_user",
    "is_tenant_name",
    "is_user_id",
]

MAX_SUB_USER = 128  # characters, as On-Behalf-Of (PROTOCOL.md section 1)
MAX_USER_ID = 256  # characters
TENANT_RULE = "1 to 64 characters of A-Z a-z 0-9 _ . -"

_TENANT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Control, invisible format (zero-width, bidi overrides, U+FEFF) and separator characters.
_NOT_IN_ID = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def is_tenant_name(name: object) -> bool:
    """Tell whether ``name`` is a valid tenant name (:data:`TENANT_RULE`)."""
    return isinstance(name, str) and _TENANT.fullmatch(name) is not None


def id_problem(value: object, max_len: int) -> str | None:
    """Why ``value`` cannot be a user or sub-user id of at most ``max_len``; None if it can."""
    if not isinstance(value, str) or not 1 <= len(value) <= max_len:
        return f"must be a string of 1..{max_len} characters"
    for at, ch in enumerate(value):
        if ch == ":" or ch.isspace() or unicodedata.category(ch) in _NOT_IN_ID:
            return (
                f"must not contain whitespace, control characters or ':' (U+{ord(ch):04X} at {at})"
            )
    return None


def is_user_id(value: object) -> bool:
    return id_problem(value, MAX_USER_ID) is None


def is_sub_user(value: object) -> bool:
    return id_problem(value, MAX_SUB_USER) is None
