"""Replaying a recording (--record): as a Binance-compatible server, or as
the exporter's answers computed offline."""
