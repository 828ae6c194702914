"""nanodistro: a factory for minimal, continuously rebuilt, signed container images."""

__version__ = "0.1.0"
