"""Prometheus exporter for Binance spot market data."""

__version__ = "0.1.0"
