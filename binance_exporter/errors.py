"""The project's own exception types."""


class MarketDataError(Exception):
    """Binance could not deliver usable data for one request.

    ``reason`` is a short, stable token suitable for a metric label, such
    as ``timeout``, ``connection``, ``server_error`` or ``invalid_symbol``.
    ``retryable`` says whether asking again may succeed (a timeout, a 5xx,
    a truncated body) or not (a 4xx, a response of the wrong shape).
    """

    def __init__(self, message: str, reason: str = "invalid_response", retryable: bool = False):
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable
