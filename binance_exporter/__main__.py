"""Entry point for ``python -m binance_exporter``."""

import sys

from binance_exporter.exporter import main

sys.exit(main())
