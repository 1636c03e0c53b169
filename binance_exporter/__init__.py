"""Prometheus exporter for Binance spot market data."""

__version__ = "0.2.0"
