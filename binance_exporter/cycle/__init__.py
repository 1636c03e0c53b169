"""The update cycle: what is refreshed when, and the immutable snapshot each cycle publishes."""
