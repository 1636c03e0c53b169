"""contrib/: the systemd unit, verified by systemd-analyze, and the
Kubernetes manifests, checked against the ports, paths, flags and
variables the exporter really has."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from binance_exporter.config import KNOWN_VARIABLES, OPTIONS, Config
from binance_exporter.exposition.http_server import HEALTH_PATHS, Health
from .helpers import ROOT

CONTRIB = Path(ROOT) / "contrib"
UNIT = CONTRIB / "systemd" / "binance-exporter.service"
KUBERNETES = CONTRIB / "kubernetes"
HARDENING = {
    "DynamicUser": "yes",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "CapabilityBoundingSet": "",
    "StateDirectory": "binance-exporter",
}


def unit_settings():
    settings = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, value)
    return settings


def manifests():
    return {
        document["kind"]: document
        for path in sorted(KUBERNETES.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8"))
    }


def container():
    (only,) = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only


def test_the_unit_is_hardened():
    settings = unit_settings()
    assert {key: settings.get(key) for key in HARDENING} == HARDENING
    assert settings["SystemCallFilter"] == "@system-service"


def test_the_unit_keeps_its_state_where_systemd_gives_it_a_writable_directory():
    assert unit_settings()["ExecStart"] == "/usr/local/bin/binance-exporter --state-dir ${STATE_DIRECTORY}"


def test_systemd_analyze_verifies_the_unit(tmp_path):
    # verify needs the command to exist: the unit runs this interpreter instead.
    unit = tmp_path / "binance-exporter.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace("/usr/local/bin/binance-exporter", sys.executable))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout) == (0, "")
    assert "binance-exporter.service" not in result.stderr


def test_systemd_analyze_rates_the_unit_ok(tmp_path):
    unit = tmp_path / "binance-exporter.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace("/usr/local/bin/binance-exporter", sys.executable))
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    exposure = re.search(r"Overall exposure level for binance-exporter\.service: ([0-9.]+) (\w+)", result.stdout)
    assert exposure and float(exposure[1]) <= 2.0 and exposure[2] == "OK"


def test_the_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = sorted(kustomization["resources"])
    assert listed == sorted(path.name for path in KUBERNETES.glob("*.yaml") if path.name != "kustomization.yaml")
    assert set(manifests()) == {"Deployment", "Service", "ServiceMonitor"}


def test_the_container_port_and_the_probes_are_the_exporters():
    ports = container()["ports"]
    assert ports == [{"name": "metrics", "containerPort": Config().port}]
    liveness, readiness = container()["livenessProbe"]["httpGet"], container()["readinessProbe"]["httpGet"]
    assert (liveness["path"], liveness["port"]) == ("/-/healthy", "metrics")
    assert (readiness["path"], readiness["port"]) == ("/-/ready", "metrics")
    assert HEALTH_PATHS["/-/healthy"] is Health.live and HEALTH_PATHS["/-/ready"] is Health.ready


def test_the_service_and_the_service_monitor_reach_the_metrics_port():
    service, monitor = manifests()["Service"], manifests()["ServiceMonitor"]
    assert service["spec"]["ports"] == [{"name": "metrics", "port": Config().port, "targetPort": "metrics"}]
    labels = manifests()["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] == labels == monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")


def test_the_container_runs_unprivileged_on_a_read_only_root():
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container()["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    state_dir = {item["name"]: item["value"] for item in container()["env"]}["BINANCE_EXPORTER_STATE_DIR"]
    assert {"name": "state", "mountPath": state_dir} in container()["volumeMounts"]


@pytest.mark.parametrize(
    "path",
    [*sorted(CONTRIB.rglob("*.*")), *sorted((Path(ROOT) / "docker").glob("*.*"))],
    ids=lambda path: str(path.relative_to(ROOT)),
)
def test_every_variable_and_flag_named_is_one_the_exporter_knows(path):
    text = path.read_text(encoding="utf-8")
    assert set(re.findall(r"BINANCE_EXPORTER_[A-Z0-9_]+", text)) <= set(KNOWN_VARIABLES)
    flags = {option.flag for option in OPTIONS}
    for line in text.splitlines():
        if "binance-exporter " in line and "ExecStart" in line:
            assert set(re.findall(r"(--[\w.-]+)", line)) <= flags
