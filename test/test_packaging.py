"""The package as users install it: built by pip from the checkout into a
fresh virtual environment, then run as the installed ``binance-exporter``
command from a directory outside the checkout.

No network: the fresh environment reaches the build backend and the runtime
requirements through a .pth file naming the test run's own site-packages,
and pip is told to look for nothing else (``--no-index --no-deps
--no-build-isolation``). pip builds in the source tree, so it builds a copy
of the checkout's files, and the checkout stays as it was.
"""

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import SimpleNamespace

import pytest
from packaging.requirements import Requirement

from binance_exporter import __version__
from binance_exporter.exposition.collector import BUILD_INFO
from binance_exporter.config import OPTIONS
from .helpers import ROOT, free_port, stop_process, wait_for
from .test_end_to_end import scrape

# What is in a checkout without being part of it.
NOT_SOURCE = (
    *(".git", ".venv", "__pycache__", "*.pyc", ".pytest_cache", ".hypothesis", "htmlcov", ".coverage*"),
    *("build", "dist", "*.egg-info", "results"),
)

# What the installed package says about itself, as its own environment reads it.
METADATA_PROBE = """
import importlib.metadata, json, binance_exporter
distribution = importlib.metadata.distribution("binance-exporter")
print(json.dumps({
    "version": importlib.metadata.version("binance-exporter"),
    "package_version": binance_exporter.__version__,
    "package_file": binance_exporter.__file__,
    "files": [str(path) for path in distribution.files],
    "requires": distribution.requires,
    "requires_python": distribution.metadata["Requires-Python"],
    "license": distribution.metadata["License"],
    "scripts": [(e.name, e.value) for e in distribution.entry_points if e.group == "console_scripts"],
}))
"""


def clean_environment():
    """The environment without what would reach past the fresh one: no
    PYTHONPATH, no pip settings, no coverage of the installed copy."""
    return {name: value for name, value in os.environ.items() if not name.startswith(("PYTHON", "PIP_", "COVERAGE_"))}


def run(installed, *command, timeout=120):
    """The finished ``command``, run from outside the checkout, its output captured."""
    return subprocess.run(
        [str(part) for part in command],
        cwd=installed.outside,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start(installed, *command):
    """``command`` started from outside the checkout, pipes captured."""
    return subprocess.Popen(  # pylint: disable=consider-using-with  # stopped by stop_process
        [str(part) for part in command],
        cwd=installed.outside,
        env=clean_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtual environment with the checkout installed in it by pip."""
    work = tmp_path_factory.mktemp("packaging")
    source, environment = work / "source", work / "venv"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE), symlinks=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", environment], check=True, timeout=120)
    installed = SimpleNamespace(
        python=environment / "bin" / "python", command=environment / "bin" / "binance-exporter", outside=work / "away"
    )
    installed.outside.mkdir()
    probe = run(installed, installed.python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    installed.site_packages = probe.stdout.strip()
    Path(installed.site_packages, "test-run.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    pip = run(
        installed,
        *(installed.python, "-m", "pip", "install", "--isolated", "--disable-pip-version-check", "--no-cache-dir"),
        *("--no-index", "--no-deps", "--no-build-isolation", source),
        timeout=300,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return installed


@pytest.fixture(scope="module")
def metadata(installed):
    result = run(installed, installed.python, "-c", METADATA_PROBE)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_command_prints_the_version(installed):
    result = run(installed, installed.command, "--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"binance-exporter {__version__}\n", "")


def test_the_command_has_the_same_flags_as_the_module(installed):
    result = run(installed, installed.command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: binance-exporter ")
    for flag in [option.flag for option in OPTIONS] + ["--once", "--version"]:
        assert f" {flag} " in result.stdout, flag
    module = subprocess.run(
        [sys.executable, "-m", "binance_exporter", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout == module.stdout


def test_the_command_reports_bad_input_in_one_line_with_status_2(installed):
    result = run(installed, installed.command, "--port", "0")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "binance-exporter: error: --port must be a whole number from 1 to 65535, not '0'\n"


def test_the_installed_version_is_the_package_s_one_version(metadata):
    assert metadata["version"] == metadata["package_version"] == __version__ == "0.2.0"
    init = Path(ROOT, "binance_exporter", "__init__.py").read_text(encoding="utf-8")
    assert re.findall(r"\d+\.\d+\.\d+", init) == [__version__]  # written once, read by setuptools (attr:)


def test_the_package_is_imported_from_the_fresh_environment_not_the_checkout(installed, metadata):
    assert Path(metadata["package_file"]).parent == Path(installed.site_packages, "binance_exporter")


def test_every_module_is_installed_and_neither_the_tests_nor_the_benchmarks(metadata):
    modules = {path for path in metadata["files"] if path.endswith(".py")}
    checkout = {path.relative_to(ROOT).as_posix() for path in Path(ROOT, "binance_exporter").rglob("*.py")}
    assert modules == checkout
    assert not [path for path in metadata["files"] if path.startswith(("test/", "bench/", "docker/"))]


def test_the_license_is_in_the_distribution(installed, metadata):
    licenses = [path for path in metadata["files"] if re.fullmatch(r"[^/]+\.dist-info/(licenses/)?LICENSE", path)]
    assert len(licenses) == 1
    installed_license = Path(installed.site_packages, licenses[0]).read_text(encoding="utf-8")
    assert installed_license == Path(ROOT, "LICENSE").read_text(encoding="utf-8")
    assert installed_license.startswith("MIT License\n\nCopyright (c) 2026 the binance-exporter authors\n")
    assert metadata["license"] == "MIT"


def test_the_console_script_is_the_entry_point_that_returns_the_exit_status(metadata):
    assert metadata["scripts"] == [["binance-exporter", "binance_exporter.__main__:main"]]
    assert metadata["requires_python"] == ">=3.11"


def pinned_requirements():
    lines = Path(ROOT, "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


def test_the_runtime_requirements_are_the_pinned_ones_as_ranges_that_hold_the_pins(metadata):
    ranges = {Requirement(text).name.lower(): Requirement(text) for text in metadata["requires"]}
    pins = {requirement.name.lower(): requirement for requirement in pinned_requirements()}
    assert set(ranges) == set(pins) and {"pyyaml", "bcrypt"} <= set(pins)
    for name, pin in pins.items():
        (version,) = [spec.version for spec in pin.specifier if spec.operator == "=="]
        assert ranges[name].specifier.contains(version), (name, version, str(ranges[name].specifier))


def test_setup_cfg_declares_what_was_installed():
    setup = configparser.ConfigParser()
    setup.read(Path(ROOT, "setup.cfg"), encoding="utf-8")
    assert setup["metadata"]["version"] == "attr: binance_exporter.__version__"
    assert setup["options"]["python_requires"] == ">=3.11"


def test_signal_handlers_are_in_place_before_the_slow_imports_in_the_console_script(installed):
    script = str(installed.command)
    probe = f"""
import atexit, runpy, signal, sys
taken_over = []  # at the first import of requests, the slowest: whether SIGTERM had its handler
sys.addaudithook(
    lambda event, args: event == "import" and args[0] == "requests" and not taken_over
    and taken_over.append(signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL)
)
atexit.register(lambda: print("taken over before the slow imports:", taken_over))
sys.argv = [{script!r}, "--version"]
runpy.run_path({script!r}, run_name="__main__")  # the script pip wrote, as its shebang runs it
"""
    result = run(installed, installed.python, "-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"binance-exporter {__version__}",
        "taken over before the slow imports: [True]",
    ]


def up(exporter, url):
    """The metrics once Binance's data is in; fails at once if the exporter ended."""
    assert exporter.poll() is None, f"the exporter ended with status {exporter.returncode}"
    metrics = scrape(url)
    return metrics if metrics[("binance_up", ())] == 1 else None


def test_the_installed_command_serves_metrics_from_the_fake_binance(installed, tmp_path):
    binance = start(
        installed, installed.python, "-m", "binance_exporter.fake.simulator", "--port", "0", "--stream-port", "0"
    )
    try:
        binance_url = wait_for(binance.stdout.readline).split()[-1]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        exporter = start(
            installed,
            *(installed.command, "--port", port, "--address", "127.0.0.1", "--base-url", binance_url),
            *("--state-dir", tmp_path, "--log-format", "json"),
        )
        try:
            metrics = wait_for(lambda: up(exporter, url))
        finally:
            status, out, err = stop_process(exporter)  # SIGTERM
    finally:
        stop_process(binance)
    assert status == 0, err
    build_info = [dict(labels) for name, labels in metrics if name == "binance_exporter_build_info"]
    assert build_info == [BUILD_INFO]  # the same Python and binance-connector as the test run's, through the .pth
    assert metrics[("binance_spread", (("symbol", "BTCUSDT"),))] > 0
    assert out.startswith("Binance spot market report")
    entries = [json.loads(line) for line in err.splitlines()]
    assert entries[-1]["message"] == "stopping on SIGTERM"
    assert any(f"binance-exporter {__version__} serving {url}/metrics" in entry["message"] for entry in entries)


def test_the_live_view_s_stylesheet_and_script_are_installed(installed, metadata):
    assets = {path for path in metadata["files"] if "/static/" in path}
    assert assets == {"binance_exporter/exposition/static/live.css", "binance_exporter/exposition/static/live.js"}
    script = "from binance_exporter.exposition import pages; print(len(pages.OVERVIEW_PAGE))"
    probe = run(installed, installed.python, "-c", script)
    assert probe.returncode == 0 and int(probe.stdout) > 0, probe.stderr
