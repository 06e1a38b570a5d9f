"""monitor: Claude organization usage limits as Prometheus metrics, plus a pass-through proxy."""

__version__ = "0.1.0"
