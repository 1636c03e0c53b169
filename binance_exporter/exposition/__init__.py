"""Exposition: the Prometheus collector, the HTTP server and its web configuration, and the printed report."""
