"""The project's own exception types."""


class MarketDataError(Exception):
    """Binance could not deliver usable data for one request.

    ``reason`` is a short, stable token suitable for a metric label:
    ``timeout``, ``connection``, ``http``, ``invalid_response`` or
    ``invalid_symbol``.
    """

    def __init__(self, message: str, reason: str = "invalid_response"):
        super().__init__(message)
        self.reason = reason
