"""Flags and environment variables: every option, env fallbacks, and a
one-line error with exit status 2 for each kind of bad input."""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from binance_exporter import __version__
from binance_exporter.config import BOOLEAN_SPELLINGS, KNOWN_VARIABLES, OPTIONS, SWITCHES, Config, parse_args
from binance_exporter.market.definitions import Shard
from .helpers import ROOT


def test_defaults():
    assert parse_args([], {}) == Config(
        port=8080,
        address="0.0.0.0",
        update_interval=10.0,
        rank_interval=60.0,
        base_urls=("https://api.binance.com",),
        request_timeout=5.0,
        weight_budget=1200,
        top=5,
        quote_volume_assets=("BTC",),
        trade_count_assets=("USDT",),
        loglevel="INFO",
        log_format="text",
        once=False,
        output_format="text",
        state_dir=os.path.join(tempfile.gettempdir(), "binance-exporter"),
        web_max_connections=128,
        web_config_file="",
    )


def test_the_state_dir_follows_xdg_state_home():
    assert parse_args([], {"XDG_STATE_HOME": "/var/lib/x"}).state_dir == "/var/lib/x/binance-exporter"


@pytest.mark.parametrize(
    "flag, value, env, field, expected",
    [
        ("--port", "9100", "BINANCE_EXPORTER_PORT", "port", 9100),
        ("--address", "127.0.0.1", "BINANCE_EXPORTER_ADDRESS", "address", "127.0.0.1"),
        ("--update-interval", "2.5", "BINANCE_EXPORTER_UPDATE_INTERVAL", "update_interval", 2.5),
        ("--rank-interval", "120", "BINANCE_EXPORTER_RANK_INTERVAL", "rank_interval", 120.0),
        (
            "--base-url",
            "https://data-api.binance.vision/",
            "BINANCE_EXPORTER_BASE_URL",
            "base_urls",
            ("https://data-api.binance.vision",),
        ),
        (
            "--base-url",
            "https://api.binance.com, https://data-api.binance.vision",
            "BINANCE_EXPORTER_BASE_URL",
            "base_urls",
            ("https://api.binance.com", "https://data-api.binance.vision"),
        ),
        ("--request-timeout", "0.5", "BINANCE_EXPORTER_REQUEST_TIMEOUT", "request_timeout", 0.5),
        ("--weight-budget", "600", "BINANCE_EXPORTER_WEIGHT_BUDGET", "weight_budget", 600),
        ("--top", "100", "BINANCE_EXPORTER_TOP", "top", 100),
        ("--quote-volume-assets", "ETH", "BINANCE_EXPORTER_QUOTE_VOLUME_ASSETS", "quote_volume_assets", ("ETH",)),
        (
            "--quote-volume-assets",
            "BTC,ETH,USDC",
            "BINANCE_EXPORTER_QUOTE_VOLUME_ASSETS",
            "quote_volume_assets",
            ("BTC", "ETH", "USDC"),
        ),
        (
            "--trade-count-assets",
            " USDT, FDUSD ,1INCH",
            "BINANCE_EXPORTER_TRADE_COUNT_ASSETS",
            "trade_count_assets",
            ("USDT", "FDUSD", "1INCH"),
        ),
        (
            "--trade-count-assets",
            ",".join(f"A{i}" for i in range(10)),
            "BINANCE_EXPORTER_TRADE_COUNT_ASSETS",
            "trade_count_assets",
            tuple(f"A{i}" for i in range(10)),
        ),
        ("--source", "REST", "BINANCE_EXPORTER_SOURCE", "source", "rest"),
        ("--symbols", "BNBUSDT, ETHBTC,BNBUSDT", "BINANCE_EXPORTER_SYMBOLS", "symbols", ("BNBUSDT", "ETHBTC")),
        ("--symbols", " ", "BINANCE_EXPORTER_SYMBOLS", "symbols", ()),
        ("--symbols", " All ", "BINANCE_EXPORTER_SYMBOLS", "symbols", "all"),
        ("--shard", "2/3", "BINANCE_EXPORTER_SHARD", "shard", Shard(2, 3)),
        ("--shard", " 1 / 1 ", "BINANCE_EXPORTER_SHARD", "shard", Shard(1, 1)),
        (
            "--stream-url",
            "wss://stream.binance.com:9443/, wss://data-stream.binance.vision",
            "BINANCE_EXPORTER_STREAM_URL",
            "stream_urls",
            ("wss://stream.binance.com:9443", "wss://data-stream.binance.vision"),
        ),
        ("--stream-url", "ws://127.0.0.1:9443", "BINANCE_EXPORTER_STREAM_URL", "stream_urls", ("ws://127.0.0.1:9443",)),
        ("--update-interval", "0.1", "BINANCE_EXPORTER_UPDATE_INTERVAL", "update_interval", 0.1),
        ("--loglevel", "debug", "BINANCE_EXPORTER_LOGLEVEL", "loglevel", "DEBUG"),
        ("--log-format", "JSON", "BINANCE_EXPORTER_LOG_FORMAT", "log_format", "json"),
        ("--format", "json", "BINANCE_EXPORTER_FORMAT", "output_format", "json"),
        ("--state-dir", "/var/lib/be", "BINANCE_EXPORTER_STATE_DIR", "state_dir", "/var/lib/be"),
        ("--web.max-connections", "16", "BINANCE_EXPORTER_WEB_MAX_CONNECTIONS", "web_max_connections", 16),
        ("--web.max-live-clients", "5", "BINANCE_EXPORTER_WEB_MAX_LIVE_CLIENTS", "web_max_live_clients", 5),
        ("--record", "/var/lib/rec", "BINANCE_EXPORTER_RECORD", "record", "/var/lib/rec"),
        ("--record-max-bytes", "1073741824", "BINANCE_EXPORTER_RECORD_MAX_BYTES", "record_max_bytes", 2**30),
        ("--record-max-bytes", "500M", "BINANCE_EXPORTER_RECORD_MAX_BYTES", "record_max_bytes", 500 * 2**20),
        ("--record-max-bytes", "2GiB", "BINANCE_EXPORTER_RECORD_MAX_BYTES", "record_max_bytes", 2 * 2**30),
        ("--record-max-bytes", "1t", "BINANCE_EXPORTER_RECORD_MAX_BYTES", "record_max_bytes", 2**40),
        ("--web.config.file", "/etc/web.yml", "BINANCE_EXPORTER_WEB_CONFIG_FILE", "web_config_file", "/etc/web.yml"),
        ("--web.config.file", " ", "BINANCE_EXPORTER_WEB_CONFIG_FILE", "web_config_file", ""),  # none
    ],
)
def test_each_option_from_flag_and_from_env(flag, value, env, field, expected):
    assert getattr(parse_args([flag, value], {}), field) == expected
    assert getattr(parse_args([f"{flag}={value}"], {}), field) == expected
    assert getattr(parse_args([], {env: value}), field) == expected


def test_the_flag_wins_over_the_environment():
    config = parse_args(["--port", "9100"], {"BINANCE_EXPORTER_PORT": "9200", "BINANCE_EXPORTER_ADDRESS": "::1"})
    assert (config.port, config.address) == (9100, "::1")


@pytest.mark.parametrize(
    "argv, env, once",
    [
        (["--once"], {}, True),
        ([], {}, False),
        ([], {"BINANCE_EXPORTER_ONCE": "true"}, True),
        ([], {"BINANCE_EXPORTER_ONCE": "1"}, True),
        ([], {"BINANCE_EXPORTER_ONCE": "yes"}, True),
        ([], {"BINANCE_EXPORTER_ONCE": "on"}, True),
        ([], {"BINANCE_EXPORTER_ONCE": "false"}, False),
        ([], {"BINANCE_EXPORTER_ONCE": "0"}, False),
        ([], {"BINANCE_EXPORTER_ONCE": "no"}, False),
        ([], {"BINANCE_EXPORTER_ONCE": "off"}, False),
        ([], {"BINANCE_EXPORTER_ONCE": "TRUE"}, True),  # any case
        ([], {"BINANCE_EXPORTER_ONCE": "Off"}, False),
        ([], {"BINANCE_EXPORTER_ONCE": " yes\n"}, True),  # surrounding white space is ignored
        ([], {"BINANCE_EXPORTER_ONCE": ""}, False),  # empty is unset
        ([], {"BINANCE_EXPORTER_ONCE": " "}, False),
        (["--once"], {"BINANCE_EXPORTER_ONCE": "false"}, True),
    ],
)
def test_once_from_flag_and_env(argv, env, once):
    assert parse_args(argv, env).once is once


@pytest.mark.parametrize(
    "argv, env, disabled",
    [
        ([], {}, False),
        (["--web.disable-ui"], {}, True),
        ([], {"BINANCE_EXPORTER_WEB_DISABLE_UI": "yes"}, True),
        (["--web.disable-ui"], {"BINANCE_EXPORTER_WEB_DISABLE_UI": "off"}, True),
    ],
)
def test_the_live_view_is_on_unless_turned_off_by_flag_or_env(argv, env, disabled):
    assert parse_args(argv, env).web_disable_ui is disabled


@pytest.mark.parametrize("value", ["maybe", "2", "-1", "t", "f", "y", "n", "enabled", "true false", "1.0", "nein"])
def test_a_boolean_variable_refuses_anything_else(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args([], {"BINANCE_EXPORTER_ONCE": value})
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "binance-exporter: error: BINANCE_EXPORTER_ONCE must be one of true|false|1|0|yes|no|on|off (any case), "
        f"or empty for false, not {value!r}\n"
    )


def test_the_readme_lists_exactly_the_boolean_spellings():
    readme = Path(ROOT, "README.md").read_text(encoding="utf-8")
    listed = re.findall(r"`((?:\w+\|)+\w+)`,\s+in any case", readme)
    assert listed == [BOOLEAN_SPELLINGS] and BOOLEAN_SPELLINGS == "true|false|1|0|yes|no|on|off"


# Misspelt settings, each with the variable it should have been.
TYPOS = {
    "BINANCE_EXPORTER_UPDATE_INTERVALL": "BINANCE_EXPORTER_UPDATE_INTERVAL",
    "BINANCE_EXPORTER_UPDATEINTERVAL": "BINANCE_EXPORTER_UPDATE_INTERVAL",
    "BINANCE_EXPORTER_LOG_LEVEL": "BINANCE_EXPORTER_LOGLEVEL",
    "BINANCE_EXPORTER_LOGFORMAT": "BINANCE_EXPORTER_LOG_FORMAT",
    "BINANCE_EXPORTER_BASE_URLS": "BINANCE_EXPORTER_BASE_URL",
    "BINANCE_EXPORTER_WEB_MAX_CONNECTION": "BINANCE_EXPORTER_WEB_MAX_CONNECTIONS",
    "BINANCE_EXPORTER_TOPN": "BINANCE_EXPORTER_TOP",
    "BINANCE_EXPORTER_TOPP": "BINANCE_EXPORTER_TOP",
    "BINANCE_EXPORTER_ADRESS": "BINANCE_EXPORTER_ADDRESS",
    "BINANCE_EXPORTER_ONE": "BINANCE_EXPORTER_ONCE",
    "BINANCE_EXPORTER_PROT": "BINANCE_EXPORTER_PORT",
    "binance_exporter_port": "BINANCE_EXPORTER_PORT",  # a variable's name is case-sensitive
    "Binance_Exporter_Once": "BINANCE_EXPORTER_ONCE",
}


@pytest.mark.parametrize("name, meant", TYPOS.items())
def test_an_unknown_variable_is_a_one_line_error_naming_the_closest_known_one(name, meant, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--port", "9100"], {"BINANCE_EXPORTER_TOP": "3", name: "5", "HOME": "/root"})
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"binance-exporter: error: unknown environment variable {name}; did you mean {meant}?\n"
    )


def test_a_variable_like_none_of_the_known_ones_is_an_error_too(capsys):
    name = "BINANCE_EXPORTER_" + "X" * 60
    with pytest.raises(SystemExit) as exit_info:
        parse_args([], {name: "1"})
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"binance-exporter: error: unknown environment variable {name} (see binance-exporter --help)\n"
    )


def test_the_first_unknown_variable_in_order_is_named(capsys):
    with pytest.raises(SystemExit):
        parse_args([], {"BINANCE_EXPORTER_TOPP": "1", "BINANCE_EXPORTER_ADRESS": "::"})
    assert "unknown environment variable BINANCE_EXPORTER_ADRESS; did you mean BINANCE_EXPORTER_ADDRESS?" in (
        capsys.readouterr().err
    )


def test_the_known_variables_are_exactly_the_options_and_switches():
    switches = {"BINANCE_EXPORTER_ONCE", "BINANCE_EXPORTER_WEB_DISABLE_UI"}
    assert KNOWN_VARIABLES == {option.env for option in OPTIONS} | switches


def test_other_variables_are_ignored():
    others = {"BINANCE_API_KEY": "x", "EXPORTER_PORT": "1", "XBINANCE_EXPORTER_PORT": "1", "BINANCE_EXPORTER": "1"}
    assert parse_args([], others) == parse_args([], {})


def test_help_and_version_answer_whatever_the_environment_holds(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--version"], {"BINANCE_EXPORTER_UPDATE_INTERVALL": "5"})
    assert exit_info.value.code == 0 and capsys.readouterr().out == f"binance-exporter {__version__}\n"


# Where the project's own files name a variable: none may be unknown (but the misspellings above, on purpose).
VARIABLE = re.compile(r"\bBINANCE_EXPORTER_[A-Z0-9_]*[A-Z0-9]\b")
NOT_SOURCE = {".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", "htmlcov", "build", "dist", "results"}


def test_every_variable_the_repository_sets_or_names_is_known():
    named = {}
    for directory, subdirectories, files in os.walk(ROOT):
        subdirectories[:] = [d for d in subdirectories if d not in NOT_SOURCE and not d.endswith(".egg-info")]
        for name in files:
            path = Path(directory, name)
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            for variable in VARIABLE.findall(text):
                named.setdefault(variable, path.relative_to(ROOT))
    assert "BINANCE_EXPORTER_BASE_URL" in named  # the scan sees docker/, for one
    unknown = {variable: path for variable, path in named.items() if variable not in KNOWN_VARIABLES | set(TYPOS)}
    assert not unknown


@pytest.mark.parametrize(
    "argv, env, message",
    [
        (["--port", "0"], {}, "--port must be a whole number from 1 to 65535, not '0'"),
        (["--port", "65536"], {}, "--port must be a whole number from 1 to 65535"),
        (["--port", "http"], {}, "--port must be a whole number"),
        ([], {"BINANCE_EXPORTER_PORT": "-1"}, "BINANCE_EXPORTER_PORT must be a whole number"),
        (["--update-interval", "0"], {}, "--update-interval must be a positive number of seconds, not '0'"),
        (["--update-interval", "-5"], {}, "--update-interval must be a positive number"),
        (["--update-interval", "0.001"], {}, "--update-interval must be at least 0.1 seconds, not '0.001'"),
        (["--rank-interval", "soon"], {}, "--rank-interval must be a positive number of seconds, not 'soon'"),
        (["--rank-interval", "nan"], {}, "--rank-interval must be a positive number"),
        (["--request-timeout", "inf"], {}, "--request-timeout must be a positive number"),
        ([], {"BINANCE_EXPORTER_UPDATE_INTERVAL": "ten"}, "BINANCE_EXPORTER_UPDATE_INTERVAL must be a positive number"),
        (["--base-url", "ftp://api.binance.com"], {}, "--base-url must be http:// or https:// URLs"),
        (["--base-url", "api.binance.com"], {}, "--base-url must be http:// or https:// URLs"),
        (["--base-url", "https://"], {}, "--base-url must be http:// or https:// URLs"),
        (["--base-url", "https://a.example,"], {}, "separated by commas, not ''"),
        (["--source", "websocket"], {}, "--source must be one of stream|rest, not 'websocket'"),
        (["--symbols", "btcusdt"], {}, "--symbols must be symbols as Binance names them, e.g. BTCUSDT, separated by "
                                       "commas, not 'btcusdt' ('BTCUSDT'?)"),  # fmt: skip
        (["--symbols", "BTCUSDT,,ETHBTC"], {}, "--symbols must be symbols as Binance names them"),
        (["--symbols", "BTC-USDT"], {}, "--symbols must be symbols as Binance names them"),
        ([], {"BINANCE_EXPORTER_SYMBOLS": ",".join(f"S{i}" for i in range(1001))}, "must name at most 1000 symbols"),
        (["--symbols", "all,BTCUSDT"], {}, "--symbols must be symbols as Binance names them"),
        (["--shard", "0/2"], {}, "--shard must be K/N, shard K of N, with 1 <= K <= N <= 1000, e.g. 1/2, not '0/2'"),
        (["--shard", "3/2"], {}, "--shard must be K/N, shard K of N"),
        (["--shard", "1/1001"], {}, "--shard must be K/N, shard K of N"),
        (["--shard", "half"], {}, "--shard must be K/N, shard K of N"),
        (["--source", "rest", "--symbols", "all"], {}, "--symbols all needs live books: it works with --source "
                                                        "stream only"),  # fmt: skip
        (["--source", "rest", "--shard", "1/2"], {}, "--shard splits live books: it works with --source stream only"),
        (["--stream-url", "https://stream.binance.com"], {}, "--stream-url must be ws:// or wss:// URLs"),
        (["--stream-url", "wss://stream.binance.com/stream?streams=x"], {}, "--stream-url must be ws:// or wss://"),
        (["--source", "rest", "--update-interval", "0.2"], {}, "--update-interval must be at least 0.5 seconds with "
                                                                 "--source rest, not 0.2"),  # fmt: skip
        (["--loglevel", "LOUD"], {}, "--loglevel must be one of CRITICAL|ERROR|WARNING|INFO|DEBUG, not 'LOUD'"),
        (["--format", "xml"], {}, "--format must be one of text|json"),
        (["--weight-budget", "0"], {}, "--weight-budget must be a whole number from 1 to 1000000, not '0'"),
        (["--weight-budget", "1.5"], {}, "--weight-budget must be a whole number from 1 to 1000000"),
        (["--top", "0"], {}, "--top must be a whole number from 1 to 100, not '0'"),
        (["--top", "101"], {}, "--top must be a whole number from 1 to 100"),
        (["--quote-volume-assets", ""], {}, "--quote-volume-assets must name at least one quote asset"),
        ([], {"BINANCE_EXPORTER_QUOTE_VOLUME_ASSETS": " "}, "BINANCE_EXPORTER_QUOTE_VOLUME_ASSETS must name at least"),
        (
            ["--quote-volume-assets", "BTC,,ETH"],
            {},
            "--quote-volume-assets must be quote assets separated by commas, with no empty item, not 'BTC,,ETH'",
        ),
        (["--trade-count-assets", "USDT,"], {}, "--trade-count-assets must be quote assets separated by commas, with"),
        (
            ["--trade-count-assets", "usdc"],
            {},
            "--trade-count-assets must be quote assets as Binance names them, upper-case letters and digits, "
            "not 'usdc' ('USDC'?)",
        ),
        (["--trade-count-assets", "USDT;USDC"], {}, "upper-case letters and digits, not 'USDT;USDC'\n"),
        (["--quote-volume-assets", "BTC ETH"], {}, "upper-case letters and digits, not 'BTC ETH'\n"),
        (["--quote-volume-assets", "BTC/USDT"], {}, "not 'BTC/USDT'\n"),
        (["--quote-volume-assets", "B" * 41], {}, f"not '{'B' * 41}'\n"),
        (["--quote-volume-assets", "BTC,ETH,BTC"], {}, "--quote-volume-assets names BTC twice\n"),
        ([], {"BINANCE_EXPORTER_TRADE_COUNT_ASSETS": "USDT,USDT"}, "BINANCE_EXPORTER_TRADE_COUNT_ASSETS names USDT"),
        (
            ["--trade-count-assets", ",".join(f"A{i}" for i in range(11))],
            {},
            "--trade-count-assets must name at most 10 quote assets, not 11",
        ),
        ([], {"BINANCE_EXPORTER_WEIGHT_BUDGET": "lots"}, "BINANCE_EXPORTER_WEIGHT_BUDGET must be a whole number"),
        (["--address", " "], {}, "--address must not be empty"),
        (["--state-dir", ""], {}, "--state-dir must not be empty"),
        (["--web.max-connections", "0"], {}, "--web.max-connections must be a whole number from 1 to 65535, not '0'"),
        (
            ["--web.max-live-clients", "0"],
            {},
            "--web.max-live-clients must be a whole number from 1 to 10000, not '0'",
        ),
        (
            ["--record-max-bytes", "5X"],
            {},
            "--record-max-bytes must be a size in bytes such as 1073741824 or 1G, not '5X'",
        ),
        (["--record-max-bytes", "1000K"], {}, "--record-max-bytes must be at least 1M (1048576 bytes), not '1000K'"),
        ([], {"BINANCE_EXPORTER_WEB_MAX_CONNECTIONS": "many"}, "BINANCE_EXPORTER_WEB_MAX_CONNECTIONS must be a whole"),
        ([], {"BINANCE_EXPORTER_ONCE": "maybe"}, "BINANCE_EXPORTER_ONCE must be one of true|false|1|0|yes|no|on|off"),
        (["--log-format", "logfmt"], {}, "--log-format must be one of text|json, not 'logfmt'"),
        ([], {"BINANCE_EXPORTER_LOG_FORMAT": "JSONL"}, "BINANCE_EXPORTER_LOG_FORMAT must be one of text|json"),
        (["--bogus"], {}, "unrecognized arguments: --bogus"),
        (["--port"], {}, "expected one argument"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(argv, env, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv, env)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("binance-exporter: error: ")
    assert message in err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--version"], {})
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"binance-exporter {__version__}"


def test_help_names_every_option_and_its_env_var(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"], {})
    out = capsys.readouterr().out
    for name in (
        "port",
        "address",
        "update-interval",
        "rank-interval",
        "base-url",
        "request-timeout",
        "weight-budget",
        "top",
        "loglevel",
        "log-format",
        "format",
        "state-dir",
        "quote-volume-assets",
        "trade-count-assets",
    ):
        assert f"--{name}" in out and f"BINANCE_EXPORTER_{name.upper().replace('-', '_')}" in out
    words = " ".join(out.split())  # argparse wraps lines
    assert "(default: BTC; env BINANCE_EXPORTER_QUOTE_VOLUME_ASSETS)" in words
    assert "(default: USDT; env BINANCE_EXPORTER_TRADE_COUNT_ASSETS)" in words
    assert "--web.max-connections WEB_MAX_CONNECTIONS" in words and "env BINANCE_EXPORTER_WEB_MAX_CONNECTIONS" in words


def run_module(module, *args):
    """The finished ``python -m module args`` process, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.parametrize("module", ["binance_exporter.exporter", "binance_exporter"])
def test_the_real_process_reports_bad_input_without_a_traceback(module):
    result = run_module(module, "--update-interval", "-1")
    assert result.returncode == 2
    assert (
        result.stderr == "binance-exporter: error: --update-interval must be a positive number of seconds, not '-1'\n"
    )
    assert result.stdout == ""


def test_the_real_process_refuses_settings_that_overspend_the_weight_budget():
    result = run_module("binance_exporter", "--update-interval", "2", "--top", "10")
    assert result.returncode == 2
    assert result.stderr.startswith("binance-exporter: error: --update-interval 2 with --top 10 and --rank-interval")
    assert result.stderr.endswith("raise --update-interval, lower --top or raise --weight-budget\n")
    assert result.stderr.count("\n") == 1


def readme_flag_table():
    """The README's flag table, as (flag, environment variable, default) rows."""
    readme = Path(ROOT, "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("\n## Running it\n") :].split("\n## ")[1]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines() if line[:1] == "|"]
    return [(row[0].strip("`"), row[1], row[2]) for row in rows if row[0].startswith("`--")]


def test_the_readme_flag_table_lists_every_option_with_its_variable_in_order():
    table = readme_flag_table()
    options = [(option.flag, f"`{option.env}`") for option in OPTIONS]
    switches = [switch.flag for switch in SWITCHES]
    assert [(flag, env) for flag, env, _ in table if flag not in (*switches, "--version")] == options
    assert [flag for flag, _, _ in table][-3:] == [*switches, "--version"]
    for (_, env, _), switch in zip(table[-3:], SWITCHES):
        assert env.startswith(f"`{switch.env}`")


@pytest.mark.parametrize("flag, default", [("--quote-volume-assets", "`BTC`"), ("--trade-count-assets", "`USDT`")])
def test_the_readme_flag_table_shows_the_default_quote_assets(flag, default):
    assert {row[0]: row[2] for row in readme_flag_table()}[flag] == default
    assert re.fullmatch(r"`(\w+)`", default)[1] == ",".join(getattr(Config(), flag[2:].replace("-", "_")))


def test_the_real_process_refuses_a_malformed_list_of_quote_assets():
    result = run_module("binance_exporter", "--quote-volume-assets", "BTC,eth")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "binance-exporter: error: --quote-volume-assets must be quote assets as Binance names them, "
        "upper-case letters and digits, not 'eth' ('ETH'?)\n"
    )
