"""equity-daemon: a fund's equity (assets minus debt, in the share-class currency), always."""

__version__ = "0.1.0"
