"""Flags and environment variables: every option, env fallbacks, and a
one-line error with exit status 2 for each kind of bad input."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from binance_exporter import __version__
from binance_exporter.config import OPTIONS, Config, parse_args
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
        loglevel="INFO",
        log_format="text",
        once=False,
        output_format="text",
        state_dir=os.path.join(tempfile.gettempdir(), "binance-exporter"),
        web_max_connections=128,
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
        ("--loglevel", "debug", "BINANCE_EXPORTER_LOGLEVEL", "loglevel", "DEBUG"),
        ("--log-format", "JSON", "BINANCE_EXPORTER_LOG_FORMAT", "log_format", "json"),
        ("--format", "json", "BINANCE_EXPORTER_FORMAT", "output_format", "json"),
        ("--state-dir", "/var/lib/be", "BINANCE_EXPORTER_STATE_DIR", "state_dir", "/var/lib/be"),
        ("--web.max-connections", "16", "BINANCE_EXPORTER_WEB_MAX_CONNECTIONS", "web_max_connections", 16),
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
        ([], {"BINANCE_EXPORTER_ONCE": "true"}, True),
        ([], {"BINANCE_EXPORTER_ONCE": "1"}, True),
        ([], {"BINANCE_EXPORTER_ONCE": "0"}, False),
        ([], {"BINANCE_EXPORTER_ONCE": ""}, False),
        (["--once"], {"BINANCE_EXPORTER_ONCE": "false"}, True),
    ],
)
def test_once_from_flag_and_env(argv, env, once):
    assert parse_args(argv, env).once is once


@pytest.mark.parametrize(
    "argv, env, message",
    [
        (["--port", "0"], {}, "--port must be a whole number from 1 to 65535, not '0'"),
        (["--port", "65536"], {}, "--port must be a whole number from 1 to 65535"),
        (["--port", "http"], {}, "--port must be a whole number"),
        ([], {"BINANCE_EXPORTER_PORT": "-1"}, "BINANCE_EXPORTER_PORT must be a whole number"),
        (["--update-interval", "0"], {}, "--update-interval must be a positive number of seconds, not '0'"),
        (["--update-interval", "-5"], {}, "--update-interval must be a positive number"),
        (["--update-interval", "0.001"], {}, "--update-interval must be at least 0.5 seconds, not '0.001'"),
        (["--rank-interval", "soon"], {}, "--rank-interval must be a positive number of seconds, not 'soon'"),
        (["--rank-interval", "nan"], {}, "--rank-interval must be a positive number"),
        (["--request-timeout", "inf"], {}, "--request-timeout must be a positive number"),
        ([], {"BINANCE_EXPORTER_UPDATE_INTERVAL": "ten"}, "BINANCE_EXPORTER_UPDATE_INTERVAL must be a positive number"),
        (["--base-url", "ftp://api.binance.com"], {}, "--base-url must be http:// or https:// URLs"),
        (["--base-url", "api.binance.com"], {}, "--base-url must be http:// or https:// URLs"),
        (["--base-url", "https://"], {}, "--base-url must be http:// or https:// URLs"),
        (["--base-url", "https://a.example,"], {}, "separated by commas, not ''"),
        (["--loglevel", "LOUD"], {}, "--loglevel must be one of CRITICAL|ERROR|WARNING|INFO|DEBUG, not 'LOUD'"),
        (["--format", "xml"], {}, "--format must be one of text|json"),
        (["--weight-budget", "0"], {}, "--weight-budget must be a whole number from 1 to 1000000, not '0'"),
        (["--weight-budget", "1.5"], {}, "--weight-budget must be a whole number from 1 to 1000000"),
        (["--top", "0"], {}, "--top must be a whole number from 1 to 100, not '0'"),
        (["--top", "101"], {}, "--top must be a whole number from 1 to 100"),
        ([], {"BINANCE_EXPORTER_WEIGHT_BUDGET": "lots"}, "BINANCE_EXPORTER_WEIGHT_BUDGET must be a whole number"),
        (["--address", " "], {}, "--address must not be empty"),
        (["--state-dir", ""], {}, "--state-dir must not be empty"),
        (["--web.max-connections", "0"], {}, "--web.max-connections must be a whole number from 1 to 65535, not '0'"),
        ([], {"BINANCE_EXPORTER_WEB_MAX_CONNECTIONS": "many"}, "BINANCE_EXPORTER_WEB_MAX_CONNECTIONS must be a whole"),
        ([], {"BINANCE_EXPORTER_ONCE": "maybe"}, "BINANCE_EXPORTER_ONCE must be true or false"),
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
    ):
        assert f"--{name}" in out and f"BINANCE_EXPORTER_{name.upper().replace('-', '_')}" in out
    words = " ".join(out.split())  # argparse wraps lines
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
    assert [(flag, env) for flag, env, _ in table if flag not in ("--once", "--version")] == options
    assert [flag for flag, _, _ in table][-2:] == ["--once", "--version"]
    assert table[-2][1].startswith("`BINANCE_EXPORTER_ONCE`")
