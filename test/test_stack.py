"""The stack in docker/, checked with the real Prometheus tools: the configs
load, every alert fires and stays quiet as its rule test says, every
recording rule records what its rule test says, the live /metrics pass
promtool, and a real Prometheus scrapes an exporter in REST mode and one in
stream mode and answers every query of the Grafana dashboard, of the alerts
and of the recording rules.

Docker itself cannot run here; the compose file, the Dockerfile and the
dashboard are checked for structure instead.
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
from binance_exporter.config import OPTIONS, parse_args
from binance_exporter.exporter import weight_per_minute
from .helpers import ROOT, free_port, http_get, start_module, stop_process, wait_for

DOCKER = Path(ROOT) / "docker"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "binance.json"
Q2 = {"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BTCDOWNUSDT"}


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


def recording_rules():
    return [rule for group in load_yaml("recording.yml")["groups"] for rule in group["rules"]]


def dashboard_queries():
    """Every PromQL expression of the dashboard, its variables filled in."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        match = re.fullmatch(r"label_values\((\w+), *(\w+)\)", variable["definition"])
        exprs.append(f"group by ({match[2]}) ({match[1]})")
    return [e.replace("$symbol", ".*").replace("$__rate_interval", "1m") for e in exprs]


def test_prometheus_config_is_valid():
    result = promtool("check", "config", "prometheus.yml")
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
    assert load_yaml("prometheus.yml")["rule_files"] == ["alerts.yml", "recording.yml"]
    mounted = compose()["services"]["prometheus"]["volumes"]
    assert "./recording.yml:/etc/prometheus/recording.yml:ro" in mounted


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


def write_prometheus_config(path: Path, prometheus_port: int, exporters: list[str]) -> None:
    """docker/prometheus.yml with every interval 1 s, the rule files where
    they are, and the scrape targets on loopback."""
    config = load_yaml("prometheus.yml")
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(DOCKER / name) for name in config["rule_files"]]
    for job in config["scrape_configs"]:
        job["scrape_interval"] = "1s"
        own = [f"127.0.0.1:{prometheus_port}"] if job["job_name"] == "prometheus" else None
        job["static_configs"] = [{"targets": own or exporters}]
    path.write_text(yaml.safe_dump(config), encoding="utf-8")


@pytest.fixture(scope="module")
def stack():
    """The fake Binance, the exporter and a real Prometheus scraping it, with
    a configuration derived from docker/prometheus.yml."""
    prometheus = tool("prometheus")
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
            prometheus_process = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped below
                [
                    prometheus,
                    f"--config.file={workdir}/prometheus.yml",
                    f"--storage.tsdb.path={workdir}/data",
                    f"--web.listen-address=127.0.0.1:{prometheus_port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
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


def test_compose_has_the_exporter_prometheus_grafana_and_a_demo_simulator():
    services = compose()["services"]
    assert {"exporter", "prometheus", "grafana", "simulator"} <= set(services)
    assert services["simulator"]["profiles"] == ["demo"]
    published = {port.split(":")[0] for service in services.values() for port in service.get("ports", [])}
    assert published == {"8080", "9090", "3000"}


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


def test_grafana_provisions_the_prometheus_datasource_the_dashboard_uses():
    datasource = yaml.safe_load(
        (DOCKER / "grafana/provisioning/datasources/prometheus.yml").read_text(encoding="utf-8")
    )
    uid = datasource["datasources"][0]["uid"]
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/dashboards.yml").read_text(encoding="utf-8"))
    mounts = dict(v.split(":")[:2][::-1] for v in compose()["services"]["grafana"]["volumes"] if v.startswith("."))
    assert mounts[provider["providers"][0]["options"]["path"]] == "./grafana/dashboards"
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == uid, panel["title"]


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
