"""Vocabulary every layer shares and that depends on no other part of streamgate."""

__all__: list[str] = []
