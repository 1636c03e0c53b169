"""The stack in docker/, checked with the real Prometheus tools: the configs
load, every alert fires and stays quiet as its rule test says, every
recording rule records what its rule test says, the live /metrics pass
promtool, and a real Prometheus scrapes an exporter in REST mode and one in
stream mode and answers every query of the Grafana dashboard, of the alerts
and of the recording rules. test_stack_shards.py runs the whole market split
between two replicas, as the compose file's shards profile does.

Docker itself cannot run here; the compose file, the Dockerfile and the
dashboards are checked for structure instead.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
from pathlib import Path

import pytest
import yaml

from binance_exporter import __version__
from binance_exporter.binance.request_gate import BINANCE_WEIGHT_LIMIT
from binance_exporter.config import KNOWN_VARIABLES, OPTIONS, parse_args
from binance_exporter.exporter import weight_per_minute
from binance_exporter.fake.simulator import WEIGHT_LIMIT
from binance_exporter.market.definitions import ALL_SYMBOLS
from .helpers import ROOT, free_port, http_get, start_module, stop_process, wait_for

DOCKER = Path(ROOT) / "docker"
DASHBOARDS = DOCKER / "grafana" / "dashboards"
DASHBOARD = DASHBOARDS / "binance.json"
MARKET_DASHBOARD = DASHBOARDS / "market-overview.json"
Q2 = {"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BTCDOWNUSDT"}
SHARDS_PROFILE = ["market-simulator", "exporter-shard-1", "exporter-shard-2", "prometheus-shards", "grafana-shards"]


def tool(name):
    """The path of a Prometheus tool; in CI a missing one fails the test."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: CI installs Debian's prometheus package (.ci/run)")
        pytest.skip(f"needs {name}: apt-get update && apt-get install -y prometheus")
    return path


def promtool(*args, stdin=None):
    return subprocess.run(
        [tool("promtool"), *args], cwd=DOCKER, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def load_yaml(name):
    return yaml.safe_load((DOCKER / name).read_text(encoding="utf-8"))


def alert_rules():
    return [rule for group in load_yaml("alerts.yml")["groups"] for rule in group["rules"]]


def recording_rules(group=None):
    """The recording rules, of every group or of the one named."""
    groups = load_yaml("recording.yml")["groups"]
    return [rule for g in groups if group in (None, g["name"]) for rule in g["rules"]]


def dashboard_queries(path=DASHBOARD):
    """Every PromQL expression of a dashboard, its variables filled in (every value: .*)."""
    board = json.loads(path.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        match = re.fullmatch(r"label_values\((\w+), *(\w+)\)", variable["definition"])
        exprs.append(f"group by ({match[2]}) ({match[1]})")
    exprs = [e.replace("$__rate_interval", "1m") for e in exprs]
    for variable in board["templating"]["list"]:
        exprs = [e.replace(f"${variable['name']}", ".*") for e in exprs]
    assert not [e for e in exprs if re.search(r"\$[A-Za-z_{]", e)]  # every variable filled in ($1: label_replace's)
    return exprs


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-shards.yml"])
def test_prometheus_config_is_valid(config):
    result = promtool("check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_are_valid():
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_and_stays_quiet_as_its_rule_test_says():
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_recording_rules_are_valid_and_record_what_their_rule_test_says():
    checked = promtool("check", "rules", "recording.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "recording.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    exercised = {case["expr"].split("{")[0] for test in load_yaml("recording.test.yml")["tests"]
                 for case in test["promql_expr_test"]}  # fmt: skip
    assert exercised == {rule["record"] for rule in recording_rules()}  # every rule proven
    for config, service in (("prometheus.yml", "prometheus"), ("prometheus-shards.yml", "prometheus-shards")):
        assert load_yaml(config)["rule_files"] == ["alerts.yml", "recording.yml"]
        mounted = compose()["services"][service]["volumes"]
        assert f"./{config}:/etc/prometheus/prometheus.yml:ro" in mounted
        for rules in ("alerts.yml", "recording.yml"):
            assert f"./{rules}:/etc/prometheus/{rules}:ro" in mounted


def test_the_market_rules_are_tested_over_two_shards_each_symbol_in_one():
    market = {rule["record"] for rule in recording_rules("binance-exporter-market")}
    two_shards = [test for test in load_yaml("recording.test.yml")["tests"] if test["name"].startswith("two shards")]
    assert len(two_shards) == 1
    instances = {}
    for series in two_shards[0]["input_series"]:
        labels = dict(re.findall(r'(\w+)="([^"]*)"', series["series"]))
        if "symbol" in labels:
            instances.setdefault(labels["symbol"], set()).add(labels["instance"])
    assert len(set().union(*instances.values())) == 2 and all(len(held) == 1 for held in instances.values())
    proven = {case["expr"] for case in two_shards[0]["promql_expr_test"]}
    # The top 20 and bottom 10 each have a test of their own, with more symbols than they keep.
    of_their_own = {"symbol:binance_spread_per_mid_price:top20_bps", "symbol:binance_order_book_notional:bottom10_min"}
    assert proven | of_their_own == market


def test_every_alert_has_a_firing_and_a_quiet_case_and_tells_the_operator_what_to_do():
    cases = [case for test in load_yaml("alerts.test.yml")["tests"] for case in test["alert_rule_test"]]
    for rule in alert_rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']} is never shown firing"
        assert any(not case["exp_alerts"] for case in mine), f"{rule['alert']} is never shown quiet"
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 80
    names = {rule["alert"] for rule in alert_rules()}
    assert {"BinanceExporterDown", "BinanceDataFailing", "BinanceDataStale", "BinanceRateLimited"} <= names
    assert {"BinanceWeightNearBudget", "BinanceWeightBudgetExhausted"} <= names


def test_the_readme_lists_every_alert():
    readme = (Path(ROOT) / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `(Binance\w+)` \|", readme, re.MULTILINE))
    assert listed == {rule["alert"] for rule in alert_rules()}


def test_neither_the_dashboard_nor_the_alerts_assume_a_top_size_or_an_update_interval():
    texts = {"dashboard": DASHBOARD.read_text(encoding="utf-8"), "alerts": (DOCKER / "alerts.yml").read_text("utf-8")}
    for name, text in texts.items():
        assert not re.search(r"(?i)\btop[ -]\d", text), name
    stale = next(rule for rule in alert_rules() if rule["alert"] == "BinanceDataStale")
    age = next(p for p in json.loads(texts["dashboard"])["panels"] if p["title"].startswith("Age of the data"))
    for expr in (stale["expr"], age["targets"][0]["expr"]):
        assert "binance_exporter_update_interval_seconds" in expr and not re.search(r"\b[1-9]\d+\b", expr), expr


STACK_BUDGET = 9000


def write_prometheus_config(path: Path, prometheus_port: int, exporters: list[str], source="prometheus.yml") -> None:
    """docker/prometheus.yml (or ``source``) with every interval 1 s, the
    rule files where they are, and the scrape targets on loopback."""
    config = load_yaml(source)
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(DOCKER / name) for name in config["rule_files"]]
    for job in config["scrape_configs"]:
        job["scrape_interval"] = "1s"
        own = [f"127.0.0.1:{prometheus_port}"] if job["job_name"] == "prometheus" else None
        job["static_configs"] = [{"targets": own or exporters}]
    path.write_text(yaml.safe_dump(config), encoding="utf-8")


def start_prometheus(workdir, port):
    """A real Prometheus on ``port``, configured by ``workdir``/prometheus.yml, keeping its data there."""
    return subprocess.Popen(  # pylint: disable=consider-using-with  # the caller stops it
        [
            tool("prometheus"),
            f"--config.file={workdir}/prometheus.yml",
            f"--storage.tsdb.path={workdir}/data",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def stack():
    """The fake Binance, the exporter and a real Prometheus scraping it, with
    a configuration derived from docker/prometheus.yml."""
    tool("prometheus")
    # Binance's own limit is raised so that only the exporter's budget limits it.
    binance = start_module(
        "binance_exporter.fake.simulator",
        *("--port", "0", "--stream-port", "0", "--tick-seconds", "0.5", "--weight-limit", "20000"),
    )
    exporter = streaming = prometheus_process = None
    with tempfile.TemporaryDirectory() as workdir:
        try:
            words = wait_for(binance.stdout.readline).split()  # "... streaming on ws://..., listening on http://..."
            binance_url, stream_url = words[-1], words[4].rstrip(",")
            exporter_port, streaming_port, prometheus_port = free_port(), free_port(), free_port()
            exporter = start_module(
                "binance_exporter.exporter",
                *("--port", str(exporter_port), "--address", "127.0.0.1", "--base-url", binance_url),
                *("--update-interval", "1", "--rank-interval", "10", "--weight-budget", str(STACK_BUDGET)),
            )
            streaming = start_module(
                "binance_exporter.exporter",
                *("--source", "stream", "--stream-url", stream_url, "--base-url", binance_url),
                *("--port", str(streaming_port), "--address", "127.0.0.1", "--update-interval", "1"),
            )
            exporters = [f"127.0.0.1:{exporter_port}", f"127.0.0.1:{streaming_port}"]
            write_prometheus_config(Path(workdir, "prometheus.yml"), prometheus_port, exporters)
            prometheus_process = start_prometheus(workdir, prometheus_port)
            url = f"http://127.0.0.1:{prometheus_port}"
            wait_for(lambda: http_get(url + "/-/ready")[0] == 200, timeout=30)
            yield {
                "prometheus": url,
                "exporter": f"http://127.0.0.1:{exporter_port}",
                "rest_instance": exporters[0],
                "streaming": f"http://127.0.0.1:{streaming_port}",
                "binance": binance_url,
            }
        finally:
            for process in (prometheus_process, exporter, streaming, binance):
                if process is not None:
                    stop_process(process)


def query(stack, expr):
    status, _, body = http_get(f"{stack['prometheus']}/api/v1/query?query={urllib.parse.quote(expr)}")
    return status, json.loads(body)


def test_prometheus_scrapes_the_exporter(stack):
    def exporter_target_up():
        _, _, body = http_get(stack["prometheus"] + "/api/v1/targets")
        targets = json.loads(body)["data"]["activeTargets"]
        return [t for t in targets if t["labels"]["job"] == "binance-exporter" and t["health"] == "up"]

    assert wait_for(exporter_target_up, timeout=30)


def test_binance_spread_has_the_q2_symbols(stack):
    def symbols():
        _, answer = query(stack, f'binance_spread{{instance="{stack["rest_instance"]}"}}')  # stream mode: every book
        return {series["metric"]["symbol"] for series in answer["data"]["result"]}

    wait_for(lambda: len(symbols()) == 5, timeout=30)
    assert symbols() == Q2


def test_every_dashboard_query_parses_and_returns_data(stack):
    for expr in dashboard_queries():

        def answer(expr=expr):
            status, body = query(stack, expr)
            assert status == 200, f"{expr}: {body}"
            return body["data"]["result"]

        assert wait_for(answer, timeout=40), f"no data for {expr}"


def test_every_alert_expression_parses(stack):
    for rule in alert_rules():
        status, body = query(stack, rule["expr"])
        assert status == 200 and body["status"] == "success", f"{rule['expr']}: {body}"


def test_prometheus_sees_the_update_interval_the_exporter_was_given(stack):
    def interval():
        _, answer = query(stack, "binance_exporter_update_interval_seconds")
        return [float(series["value"][1]) for series in answer["data"]["result"]]

    assert wait_for(interval, timeout=30) == [1.0, 1.0]  # both exporters


def test_the_weight_alerts_see_the_exporter_run_out_of_its_budget(stack):
    # The exporter's settings fit its budget (about 8,220 a minute of 9,000), but another client on the
    # same IP spends 2,400 every 20 s: Binance's reported weight brings the exporter to its budget each minute.
    def alert_states():
        _, answer = query(stack, "ALERTS")
        return {series["metric"]["alertname"]: series["metric"]["alertstate"] for series in answer["data"]["result"]}

    stop = threading.Event()

    def another_client():
        while True:
            for _ in range(30):
                http_get(stack["binance"] + "/api/v3/ticker/24hr")  # weight 80 each
            if stop.wait(20):
                return

    neighbour = threading.Thread(target=another_client, daemon=True)
    neighbour.start()
    try:
        assert wait_for(lambda: alert_states().get("BinanceWeightBudgetExhausted") == "firing", timeout=150)
        assert alert_states().get("BinanceWeightNearBudget") in ("pending", "firing")
    finally:
        stop.set()
        neighbour.join()


def test_prometheus_loaded_the_alert_and_recording_rules(stack):
    _, _, body = http_get(stack["prometheus"] + "/api/v1/rules")
    loaded = {rule["name"] for group in json.loads(body)["data"]["groups"] for rule in group["rules"]}
    assert loaded == {rule["alert"] for rule in alert_rules()} | {rule["record"] for rule in recording_rules()}


def test_every_recording_rule_records_data(stack):
    for rule in recording_rules():
        status, body = query(stack, rule["expr"])
        assert status == 200 and body["status"] == "success", f"{rule['expr']}: {body}"
        assert wait_for(lambda name=rule["record"]: query(stack, name)[1]["data"]["result"], timeout=40), rule["record"]


@pytest.mark.parametrize("exporter", ["exporter", "streaming"])
def test_live_metrics_pass_promtool_check_metrics(stack, exporter):
    wait_for(lambda: b"binance_spread{" in http_get(stack[exporter] + "/metrics")[2], timeout=30)
    if exporter == "streaming":
        wait_for(lambda: b"binance_trades_total{" in http_get(stack[exporter] + "/metrics")[2], timeout=30)
    _, _, metrics = http_get(stack[exporter] + "/metrics")
    result = promtool("check", "metrics", stdin=metrics.decode())
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stdout + result.stderr


def compose():
    return load_yaml("docker-compose.yml")


def test_compose_has_the_exporter_prometheus_grafana_a_demo_simulator_and_a_shards_profile():
    services = compose()["services"]
    by_profile = {}
    for name, service in services.items():
        for profile in service.get("profiles", ["default"]):
            by_profile.setdefault(profile, []).append(name)
    assert by_profile == {
        "default": ["exporter", "prometheus", "grafana"],
        "demo": ["simulator"],
        "shards": SHARDS_PROFILE,
    }

    def published(names):
        return [port.split(":")[0] for name in names for port in services[name].get("ports", [])]

    assert published(by_profile["default"]) == ["8080", "9090", "3000"]
    assert published(by_profile["shards"]) == ["8081", "8082", "9091", "3001"]  # beside the default stack's
    # `up` with the shards profile's services named starts them and what they depend on, nothing else.
    assert services["grafana-shards"]["depends_on"] == ["prometheus-shards"]
    assert services["prometheus-shards"]["depends_on"] == ["exporter-shard-1", "exporter-shard-2"]
    for name in ("exporter-shard-1", "exporter-shard-2"):
        assert services[name]["depends_on"] == {"market-simulator": {"condition": "service_healthy"}}


def compose_environment(service):
    """A service's BINANCE_EXPORTER_* variables as the exporter sees them
    with nothing set around compose: each ${VAR:-default} its default."""
    environment = compose()["services"][service].get("environment", {})
    return {
        name: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))
        for name, value in environment.items()
        if name.startswith("BINANCE_EXPORTER_")
    }


def test_every_binance_exporter_variable_in_compose_is_an_option_the_exporter_accepts():
    for name in compose()["services"]:
        environment = compose_environment(name)
        assert set(environment) <= KNOWN_VARIABLES, f"{name}: {set(environment) - KNOWN_VARIABLES}"
        if environment:
            parse_args([], environment)  # a value it refuses exits (SystemExit), naming it


def test_the_shards_profile_splits_the_whole_market_between_two_replicas_one_prometheus_scrapes():
    services = compose()["services"]
    simulator = services["market-simulator"]["entrypoint"]
    assert simulator[:3] == ["python", "-m", "binance_exporter.fake.simulator"] and "--whole-market" in simulator
    flag = {name: value for name, value in zip(simulator[3:], simulator[4:]) if name[:2] == "--" and value[:2] != "--"}
    configs = {name: parse_args([], compose_environment(name)) for name in ("exporter-shard-1", "exporter-shard-2")}
    assert [(c.shard.index, c.shard.count) for c in configs.values()] == [(1, 2), (2, 2)]  # no gap, no overlap
    targets = []
    for name, config in configs.items():
        assert config.symbols == ALL_SYMBOLS and config.source == "stream"
        assert config.base_urls == (f"http://market-simulator:{flag['--port']}",)
        assert config.stream_urls == (f"ws://market-simulator:{flag['--stream-port']}",)
        assert services[name]["ports"] == [f"{config.port}:{config.port}"]
        targets.append(f"{name}:{config.port}")
    # The fake's limit is Binance's per IP, for both replicas together; each replica stops at its
    # budget of the weight the IP used, as Binance reports it: each budget fits the limit.
    assert "--weight-limit" not in flag and WEIGHT_LIMIT == BINANCE_WEIGHT_LIMIT
    assert all(config.weight_budget < BINANCE_WEIGHT_LIMIT for config in configs.values())
    jobs = {job["job_name"]: job for job in load_yaml("prometheus-shards.yml")["scrape_configs"]}
    assert jobs["binance-exporter"]["static_configs"] == [{"targets": targets}]
    assert load_yaml("prometheus.yml")["scrape_configs"][0]["job_name"] == "binance-exporter"  # the alerts' job
    # Its Grafana asks the shards profile's Prometheus, under the uid the dashboards name.
    datasource = yaml.safe_load(
        (DOCKER / "grafana/provisioning-shards/datasources/prometheus.yml").read_text(encoding="utf-8")
    )["datasources"][0]
    assert datasource["uid"] == "prometheus" and datasource["url"] == "http://prometheus-shards:9090"
    grafana = services["grafana-shards"]
    mounts = dict(v.split(":")[:2][::-1] for v in grafana["volumes"] if v.startswith("."))
    assert mounts["/etc/grafana/provisioning/datasources"] == "./grafana/provisioning-shards/datasources"
    assert mounts["/etc/grafana/dashboards"] == "./grafana/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"/etc/grafana/dashboards/{MARKET_DASHBOARD.name}"


def test_the_shards_profiles_simulator_runs_with_its_flags_and_serves_the_whole_market():
    entrypoint = compose()["services"]["market-simulator"]["entrypoint"]
    flags = entrypoint[3:]
    for name, value in (("--address", "127.0.0.1"), ("--port", "0"), ("--stream-port", "0")):
        flags[flags.index(name) + 1] = value  # on loopback, on free ports
    simulator = start_module(entrypoint[2], *flags)
    try:
        url = wait_for(simulator.stdout.readline, timeout=60).split()[-1]
        _, _, body = http_get(url + "/api/v3/exchangeInfo", timeout=30)
        trading = [s for s in json.loads(body)["symbols"] if s["status"] == "TRADING"]
        assert len(trading) > 1000 and len({s["quoteAsset"] for s in trading}) > 5
    finally:
        stop_process(simulator)


def test_every_image_is_pinned():
    for name, service in compose()["services"].items():
        image = service.get("image", "")
        if "build" in service:
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned"
    for line in (DOCKER / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("FROM "):
            assert re.fullmatch(r"FROM python:\d+\.\d+\.\d+-slim-\w+( AS \w+)?", line), line


def test_every_volume_build_and_env_file_of_the_stack_exists_in_the_repository():
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name}: {source} is missing"
        if "build" in service:
            context = DOCKER / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).is_file()
    assert (DOCKER / "demo.env").is_file()


def test_every_flag_is_settable_through_the_exporters_environment():
    environment = compose()["services"]["exporter"]["environment"]
    assert {option.env for option in OPTIONS} <= set(environment)


def test_the_demo_points_the_exporter_at_the_simulator():
    settings = dict(
        line.split("=", 1) for line in (DOCKER / "demo.env").read_text(encoding="utf-8").splitlines() if "=" in line
    )
    assert settings["BINANCE_EXPORTER_BASE_URL"] == "http://simulator:9999"
    simulator = compose()["services"]["simulator"]
    assert "--port" in simulator["entrypoint"] and "9999" in simulator["entrypoint"]


def test_the_demo_settings_fit_their_weight_budget():
    settings = dict(
        line.split("=", 1) for line in (DOCKER / "demo.env").read_text(encoding="utf-8").splitlines() if "=" in line
    )
    config = parse_args([], settings)
    assert weight_per_minute(config) <= config.weight_budget


def test_grafana_provisions_the_prometheus_datasource_the_dashboards_use():
    datasource = yaml.safe_load(
        (DOCKER / "grafana/provisioning/datasources/prometheus.yml").read_text(encoding="utf-8")
    )
    uid = datasource["datasources"][0]["uid"]
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/dashboards.yml").read_text(encoding="utf-8"))
    mounts = dict(v.split(":")[:2][::-1] for v in compose()["services"]["grafana"]["volumes"] if v.startswith("."))
    assert mounts[provider["providers"][0]["options"]["path"]] == "./grafana/dashboards"
    boards = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARDS.glob("*.json"))]
    assert [board["uid"] for board in boards] == ["binance-spot", "binance-market"]
    for board in boards:
        for panel in board["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == uid, panel["title"]
                assert all(target["datasource"]["uid"] == uid for target in panel["targets"]), panel["title"]
        for variable in board["templating"]["list"]:
            assert variable["datasource"]["uid"] == uid, variable["name"]


def test_the_dashboard_shows_what_operators_need():
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = " ".join(dashboard_queries())
    for metric in (
        "binance_spread",
        "binance_spread_delta",
        "binance_order_book_notional",
        "binance_top_symbol_rank",
        "binance_up",
        "binance_exporter_last_update_timestamp_seconds",
        "binance_exporter_api_requests_total",
        "binance_exporter_api_weight_used",
        "binance_exporter_update_duration_seconds",
    ):
        assert metric in exprs, metric
    assert [p["type"] for p in board["panels"]].count("table") == 2
    assert [v["name"] for v in board["templating"]["list"]] == ["symbol"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))


def test_the_market_dashboard_shows_the_market_rules_and_the_shards_health():
    board = json.loads(MARKET_DASHBOARD.read_text(encoding="utf-8"))
    exprs = " ".join(dashboard_queries(MARKET_DASHBOARD))
    # Every market rule is read by a panel, or by a rule a panel reads (the top 20 of the spreads in bps).
    market = recording_rules("binance-exporter-market")
    shown = {rule["record"] for rule in market if rule["record"] in exprs}
    for rule in market:
        if any(rule["record"] in other["expr"] for other in market if other["record"] in shown):
            shown.add(rule["record"])
    assert shown == {rule["record"] for rule in market}
    for metric in (
        "binance_stream_event_lag_seconds_bucket",
        "binance_stream_connections",
        "binance_exporter_shard_info",
    ):
        assert metric in exprs, metric
    titles = [p["title"] for p in board["panels"] if p["type"] == "table"]
    assert len(titles) == 2 and "widest spreads" in titles[0] and "thinnest" in titles[1]
    assert [v["name"] for v in board["templating"]["list"]] == ["quote_asset"]
    # One row repeats, once per quote asset, with the panels under it: the last row, so nothing else repeats.
    repeated = [p for p in board["panels"] if p.get("repeat")]
    assert [(p["type"], p["repeat"]) for p in repeated] == [("row", "quote_asset")]
    assert [p for p in board["panels"] if p["type"] == "row"][-1] is repeated[0]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    # Panels never overlap.
    cells = [(p["gridPos"]["x"] + dx, p["gridPos"]["y"] + dy) for p in board["panels"]
             for dx in range(p["gridPos"]["w"]) for dy in range(p["gridPos"]["h"])]  # fmt: skip
    assert len(cells) == len(set(cells)) and all(x < 24 for x, _ in cells)


def test_the_image_runs_the_exporter_as_a_non_root_user_with_a_healthcheck():
    dockerfile = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.count("\nFROM ") + dockerfile.startswith("FROM ") >= 2  # multi-stage
    assert re.search(r"^USER (?!root|0\b)\S+", dockerfile, re.MULTILINE)
    assert re.search(r"^EXPOSE 8080$", dockerfile, re.MULTILINE)
    healthcheck = dockerfile[dockerfile.index("HEALTHCHECK") :].split("\nENTRYPOINT")[0]
    assert "/-/healthy" in healthcheck and '["python", "-c"' in healthcheck  # no curl or wget in a slim image
    labels = dict(re.findall(r'(org\.opencontainers\.image\.\w+)="([^"]*)"', dockerfile))
    assert labels["org.opencontainers.image.licenses"] == "MIT"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert f"ARG VERSION={__version__}" in dockerfile
    assert 'ENTRYPOINT ["python", "-m", "binance_exporter"]' in dockerfile
    ignored = (Path(ROOT) / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ignored[1] == "*" and "!binance_exporter/" in ignored


def test_the_makefile_has_the_docker_targets():
    makefile = (Path(ROOT) / "Makefile").read_text(encoding="utf-8")
    for target in ("docker-build", "docker-up", "docker-demo", "docker-down"):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target
