"""streamgate: a real-time event gateway for trading and payment platforms."""

__all__ = ["__version__"]

__version__ = "0.1.0"
