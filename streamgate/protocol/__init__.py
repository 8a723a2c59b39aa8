"""Wire formats, sans-I/O: the stream protocol, the producer API, topic grammar."""

__all__: list[str] = []
