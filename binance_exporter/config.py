"""Command-line flags and environment variables, read into a ``Config``.

``parse_args(argv, env)`` is the only place either is read. Every flag can
also be set as ``BINANCE_EXPORTER_<FLAG_IN_UPPER_SNAKE>``; the flag wins.
Bad input ends the program with one line on stderr and exit status 2,
and so does a ``BINANCE_EXPORTER_*`` variable that sets nothing: a
misspelt setting is an error, never silently the default.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from typing import Callable, Mapping, NoReturn, Optional, Sequence, Union
from urllib.parse import urlsplit

from binance_exporter import __version__
from binance_exporter.exposition.http_server import Limits
from binance_exporter.logs import LOG_FORMATS
from binance_exporter.market.definitions import (
    ALL_SYMBOLS,
    DEFAULT_QUOTE_VOLUME_ASSETS,
    DEFAULT_TRADE_COUNT_ASSETS,
    MAX_LISTS_PER_RANKING,
    WHOLE,
    Shard,
    is_name,
)

ENV_PREFIX = "BINANCE_EXPORTER_"
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
FORMATS = ("text", "json")
# Faster than this, REST polling only burns request weight: every cycle
# fetches whole books. Live books cost nothing to read, but Binance's own
# data moves in 100 ms steps.
MIN_UPDATE_INTERVAL = 0.5
MIN_STREAM_UPDATE_INTERVAL = 0.1
SOURCES = ("stream", "rest")
# Symbols --symbols may name: each is a live book and a stream.
MAX_SYMBOLS = 1000
STATE_DIR_NAME = "binance-exporter"


@dataclass(frozen=True)
class Config:  # pylint: disable=too-many-instance-attributes  # one attribute per option
    """The exporter's settings."""

    port: int = 8080
    address: str = "0.0.0.0"
    update_interval: float = 10.0
    rank_interval: float = 60.0
    base_urls: tuple[str, ...] = ("https://api.binance.com",)
    request_timeout: float = 5.0
    weight_budget: int = 1200
    top: int = 5
    quote_volume_assets: tuple[str, ...] = DEFAULT_QUOTE_VOLUME_ASSETS
    trade_count_assets: tuple[str, ...] = DEFAULT_TRADE_COUNT_ASSETS
    loglevel: str = "INFO"
    log_format: str = "text"
    once: bool = False
    output_format: str = "text"
    state_dir: str = ""  # "" until parse_args fills in default_state_dir()
    web_max_connections: int = Limits.max_connections
    web_config_file: str = ""
    web_max_live_clients: int = Limits.max_live_clients
    record: str = ""  # "": not recording
    record_max_bytes: int = 2**30
    web_disable_ui: bool = False
    source: str = "stream"
    symbols: Union[tuple[str, ...], str] = ()  # or ALL_SYMBOLS
    shard: Shard = WHOLE
    stream_urls: tuple[str, ...] = ("wss://stream.binance.com:9443",)


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.strip().isdigit() or not low <= int(text) <= high:
            raise ValueError(f"must be a whole number from {low} to {high}, not {text!r}")
        return int(text)

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a positive number of seconds, not {text!r}")
    return value


def _update_interval(text: str) -> float:
    value = _seconds(text)
    if value < MIN_STREAM_UPDATE_INTERVAL:
        raise ValueError(f"must be at least {MIN_STREAM_UPDATE_INTERVAL:g} seconds, not {text!r}")
    return value


def default_state_dir(env: Mapping[str, str]) -> str:
    """Where the exporter keeps what must outlive it: under
    ``$XDG_STATE_HOME`` when set, else the system's temporary directory."""
    base = env.get("XDG_STATE_HOME") or tempfile.gettempdir()
    return os.path.join(base, STATE_DIR_NAME)


def _urls(*schemes: str) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        urls = tuple(url.strip() for url in text.split(","))
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in schemes or not parts.hostname or parts.query or parts.fragment:
                spelled = " or ".join(f"{scheme}://" for scheme in schemes)
                raise ValueError(f"must be {spelled} URLs, separated by commas, not {url!r}")
        return tuple(url.rstrip("/") for url in urls)

    return parse


def _symbols(text: str) -> Union[tuple[str, ...], str]:
    if not text.strip():
        return ()
    if text.strip().lower() == ALL_SYMBOLS:
        return ALL_SYMBOLS
    symbols = tuple(symbol.strip() for symbol in text.split(","))
    for symbol in symbols:
        if not is_name(symbol):
            hint = f" ({symbol.upper()!r}?)" if is_name(symbol.upper()) else ""
            raise ValueError(f"must be symbols as Binance names them, e.g. BTCUSDT, separated by commas, "
                             f"not {symbol!r}{hint}")  # fmt: skip
    if len(set(symbols)) > MAX_SYMBOLS:
        raise ValueError(f"must name at most {MAX_SYMBOLS} symbols, not {len(set(symbols))}")
    return tuple(dict.fromkeys(symbols))


def _quote_assets(text: str) -> tuple[str, ...]:
    if not text.strip():
        raise ValueError("must name at least one quote asset")
    assets = tuple(asset.strip() for asset in text.split(","))
    if "" in assets:
        raise ValueError(f"must be quote assets separated by commas, with no empty item, not {text!r}")
    for asset in assets:
        if not is_name(asset):
            hint = f" ({asset.upper()!r}?)" if is_name(asset.upper()) else ""
            raise ValueError(
                f"must be quote assets as Binance names them, upper-case letters and digits, not {asset!r}{hint}"
            )
    if repeated := next((asset for i, asset in enumerate(assets) if asset in assets[:i]), None):
        raise ValueError(f"names {repeated} twice")
    if len(assets) > MAX_LISTS_PER_RANKING:
        raise ValueError(f"must name at most {MAX_LISTS_PER_RANKING} quote assets, not {len(assets)}")
    return assets


def _non_empty(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def _choice(choices: Sequence[str], normalize: Callable[[str], str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if normalize(text) not in choices:
            raise ValueError(f"must be one of {'|'.join(choices)}, not {text!r}")
        return normalize(text)

    return parse


# What a boolean variable accepts, in any case; empty is the same as unset (false).
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")
BOOLEAN_SPELLINGS = "|".join(word for pair in zip(TRUE_WORDS, FALSE_WORDS) for word in pair)


BYTE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
MIN_RECORD_BYTES = 2**20


def _bytes(text: str) -> int:
    """A size in bytes: a whole number, or one with K, M, G or T (powers of 1024)."""
    match = re.fullmatch(r"\s*([0-9]+)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"must be a size in bytes such as 1073741824 or 1G, not {text!r}")
    size = int(match[1]) * BYTE_UNITS[match[2].upper()]
    if size < MIN_RECORD_BYTES:
        raise ValueError(f"must be at least 1M (1048576 bytes), not {text!r}")
    return size


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS or not lowered:
        return False
    raise ValueError(f"must be one of {BOOLEAN_SPELLINGS} (any case), or empty for false, not {text!r}")


@dataclass(frozen=True)
class _Option:
    flag: str
    field: str
    parse: Callable[[str], object]
    help: str

    @property
    def env(self) -> str:
        """The environment variable that sets this option."""
        return ENV_PREFIX + self.flag.lstrip("-").replace("-", "_").replace(".", "_").upper()


OPTIONS = (
    _Option("--port", "port", _whole_number(1, 65535), "port to serve /metrics on"),
    _Option("--address", "address", _non_empty, "address to listen on"),
    _Option(
        "--update-interval",
        "update_interval",
        _update_interval,
        f"seconds between updates of books and spreads, at least {MIN_STREAM_UPDATE_INTERVAL:g} "
        f"({MIN_UPDATE_INTERVAL:g} with --source rest)",
    ),
    _Option("--rank-interval", "rank_interval", _seconds, "seconds between refreshes of the top lists"),
    _Option(
        "--base-url",
        "base_urls",
        _urls("http", "https"),
        "Binance REST API base URL; several, separated by commas, are tried in turn when one fails",
    ),
    _Option("--request-timeout", "request_timeout", _seconds, "seconds to wait for Binance to connect or answer"),
    _Option(
        "--weight-budget",
        "weight_budget",
        _whole_number(1, 1_000_000),
        "request weight the exporter may use per minute (Binance allows 6000 per IP)",
    ),
    _Option(
        "--source",
        "source",
        _choice(SOURCES, str.lower),
        "where books come from: stream (live local order books kept from Binance's websocket streams) "
        "or rest (polled every update)",
    ),
    _Option(
        "--symbols",
        "symbols",
        _symbols,
        "symbols, separated by commas, to keep a live book of besides the top lists' (stream mode); "
        "one not TRADING on Binance is logged and skipped; all: every TRADING symbol, the whole market",
    ),
    _Option(
        "--shard",
        "shard",
        Shard.of,
        "K/N: keep and export only the symbols of shard K of N (a stable hash of the name), so that N "
        "replicas split the market with no overlap and no gap",
    ),
    _Option(
        "--stream-url",
        "stream_urls",
        _urls("ws", "wss"),
        "Binance websocket stream base URL; several, separated by commas, are tried in turn when one fails",
    ),
    _Option("--top", "top", _whole_number(1, 100), "how many symbols each top list holds"),
    _Option(
        "--quote-volume-assets",
        "quote_volume_assets",
        _quote_assets,
        "quote assets, separated by commas, each with a top list of its symbols by 24 h quote volume "
        f"and their order book notionals; at most {MAX_LISTS_PER_RANKING}",
    ),
    _Option(
        "--trade-count-assets",
        "trade_count_assets",
        _quote_assets,
        "quote assets, separated by commas, each with a top list of its symbols by 24 h trade count "
        f"and their spreads; at most {MAX_LISTS_PER_RANKING}",
    ),
    _Option("--loglevel", "loglevel", _choice(LOG_LEVELS, str.upper), "|".join(LOG_LEVELS)),
    _Option(
        "--log-format",
        "log_format",
        _choice(LOG_FORMATS, str.lower),
        "format of the log lines on stderr: text|json (json: one object per line)",
    ),
    _Option("--format", "output_format", _choice(FORMATS, str.lower), "format of the printed report: text|json"),
    _Option(
        "--state-dir",
        "state_dir",
        _non_empty,
        "directory for what must outlive a restart (a pause Binance asked for); "
        f"default $XDG_STATE_HOME/{STATE_DIR_NAME}, else {os.path.join(tempfile.gettempdir(), STATE_DIR_NAME)}",
    ),
    _Option(
        "--web.max-connections",
        "web_max_connections",
        _whole_number(1, 65535),
        "HTTP connections open at once; at the limit a new one closes the one that has waited longest on its client",
    ),
    _Option(
        "--web.max-live-clients",
        "web_max_live_clients",
        _whole_number(1, 10_000),
        "browsers following the live view's pages at once, apart from --web.max-connections; past it, a 503",
    ),
    _Option(
        "--record",
        "record",
        str.strip,  # empty: not recording
        "directory to record everything received from Binance into: websocket messages and REST answers, "
        "gzip-compressed JSON lines, a file an hour",
    ),
    _Option(
        "--record-max-bytes",
        "record_max_bytes",
        _bytes,
        "what --record's directory may hold, in bytes (or with K, M, G, T); past it the oldest files are "
        "deleted",
    ),
    _Option(
        "--web.config.file",
        "web_config_file",
        str.strip,  # empty: no file
        "web configuration file (the YAML of node_exporter's --web.config.file): TLS, basic authentication, "
        "response headers",
    ),
)
# Flags without a value; their variables are booleans.
SWITCHES = (
    _Option(
        "--once",
        "once",
        _boolean,
        "print the report of Q1-Q4 once and exit; exit status 1 if Binance could not be read",
    ),
    _Option(
        "--web.disable-ui",
        "web_disable_ui",
        _boolean,
        "serve no live view (the pages at / and /book/<SYMBOL>, and their events): /metrics and the health "
        "endpoints only",
    ),
)
# Exactly the variables that set something.
KNOWN_VARIABLES = frozenset(option.env for option in (*OPTIONS, *SWITCHES))


class OneLineParser(argparse.ArgumentParser):
    """argparse, with errors reported in one line rather than with usage."""

    def error(self, message: str) -> NoReturn:
        config_error(message, self.prog)


def _shown(default: object) -> str:
    if isinstance(default, Shard):
        return str(default)
    return ",".join(default) if isinstance(default, tuple) else str(default)


def _parser() -> OneLineParser:
    parser = OneLineParser(
        prog="binance-exporter",
        description="Prometheus exporter for Binance spot market data.",
        epilog=f"Every option can also be set as an environment variable {ENV_PREFIX}<OPTION>, "
        f"e.g. {ENV_PREFIX}UPDATE_INTERVAL=5; the flag wins. Any other {ENV_PREFIX}* variable is an error.",
    )
    defaults = Config()
    for option in OPTIONS:
        parser.add_argument(
            option.flag,
            dest=option.field,
            metavar=option.env.removeprefix(ENV_PREFIX),
            help=f"{option.help} (default: {_shown(getattr(defaults, option.field))}; env {option.env})"
            if getattr(defaults, option.field) != ""
            else f"{option.help} (env {option.env})",
        )
    for switch in SWITCHES:
        parser.add_argument(
            switch.flag,
            dest=switch.field,
            action="store_const",
            const="true",
            help=f"{switch.help} (env {switch.env}: {BOOLEAN_SPELLINGS})",
        )
    parser.add_argument("--version", action="version", version=f"binance-exporter {__version__}")
    return parser


def parse_args(argv: Optional[Sequence[str]], env: Mapping[str, str]) -> Config:
    """The configuration from ``argv`` (without the program name) and
    ``env``; exits with status 2 and a one-line message on bad input."""
    parser = _parser()
    args = parser.parse_args(argv)
    _refuse_unknown_variables(env, parser)
    values: dict[str, object] = {}
    for option in (*OPTIONS, *SWITCHES):
        flag_value = getattr(args, option.field)
        if flag_value is not None:
            text, source = flag_value, option.flag
        elif option.env in env:
            text, source = env[option.env], option.env
        else:
            continue
        try:
            values[option.field] = option.parse(text)
        except ValueError as exc:
            parser.error(f"{source} {exc}")
    values.setdefault("state_dir", default_state_dir(env))
    config = Config(**values)  # type: ignore[arg-type]
    if config.source == "rest" and config.symbols == ALL_SYMBOLS:
        parser.error("--symbols all needs live books: it works with --source stream only")
    if config.source == "rest" and config.shard != WHOLE:
        parser.error("--shard splits live books: it works with --source stream only")
    if config.source == "rest" and config.update_interval < MIN_UPDATE_INTERVAL:
        parser.error(
            f"--update-interval must be at least {MIN_UPDATE_INTERVAL:g} seconds with --source rest, "
            f"not {config.update_interval:g}"
        )
    return config


def _refuse_unknown_variables(env: Mapping[str, str], parser: OneLineParser) -> None:
    """A ``BINANCE_EXPORTER_*`` variable (in any case) that sets nothing is
    an error naming the closest one that does."""
    unknown = sorted(name for name in env if name.upper().startswith(ENV_PREFIX) and name not in KNOWN_VARIABLES)
    if unknown:
        closest = difflib.get_close_matches(unknown[0].upper(), sorted(KNOWN_VARIABLES), n=1)
        hint = f"; did you mean {closest[0]}?" if closest else f" (see {parser.prog} --help)"
        parser.error(f"unknown environment variable {unknown[0]}{hint}")


def config_error(message: str, prog: str = "binance-exporter") -> NoReturn:
    """Reports bad input in one line on stderr and exits with status 2:
    flags and variables while parsing, or later (a port that cannot be bound)."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.exit(2)
