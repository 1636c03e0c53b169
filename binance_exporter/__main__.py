"""Entry point for ``python -m binance_exporter``.

The signal handlers are installed before anything else is imported:
importing the exporter takes a moment, and a SIGTERM or Ctrl-C in that
moment must stop it cleanly too.
"""

import sys

from binance_exporter.signals import SignalRecord


def main() -> int:
    """Runs the exporter with the command line and environment; returns the exit status."""
    signals = SignalRecord().install()
    from binance_exporter.exporter import main as run  # pylint: disable=import-outside-toplevel  # after the handlers

    return run(signals=signals)


if __name__ == "__main__":
    sys.exit(main())
