"""Static validation of ``deploy/compose.yaml`` (no Docker engine here): the Compose
Specification JSON schema (the copy vendored by ``check-jsonschema``), ``docker compose
config`` when the plugin exists, every mounted or built file exists, the replicas share
PostgreSQL and forward to Jaeger, Grafana provisioning is mounted where it points, and
the Prometheus config scrapes every replica (``promtool check config`` when installed).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from tests.servers.otelcol import GATEWAY_YAML
from tests.support_deploy import (
    COMPOSE,
    DEPLOY,
    ROOT,
    Doc,
    compose,
    load_yaml,
    mltrace_services,
    port_of,
)

PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"


# -- compose ----------------------------------------------------------------------------
def compose_schema() -> Doc:
    ref = resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(ref.read_text("utf-8"))
    assert isinstance(schema, dict)
    return schema


def compose_errors(doc: Doc) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc)]


def test_compose_matches_compose_spec_schema() -> None:
    assert compose_errors(compose()) == []
    # the schema is strict enough to catch a typo (so a pass means something)
    broken = compose()
    broken["services"]["postgres"]["imagee"] = broken["services"]["postgres"].pop("image")
    assert any("imagee" in e for e in compose_errors(broken))


def test_docker_compose_config_when_the_plugin_exists() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"docker compose plugin unavailable: {probe.stderr.strip()[:200]}")
    out = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr


def test_compose_services_are_complete_and_reference_existing_files() -> None:
    doc = compose()
    services = doc["services"]
    for needed in ("postgres", "gateway", "jaeger", "prometheus", "alertmanager", "grafana"):
        assert needed in services, f"compose has no {needed} service"
    replicas = mltrace_services(doc)
    assert len(replicas) >= 2, "the compose stack shows the scale-out: two replicas or more"
    for name, svc in services.items():
        build = svc.get("build")
        if build is not None:
            context = (COMPOSE.parent / build["context"]).resolve()
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
            assert context == ROOT, f"{name}: build context should be the repo root"
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (COMPOSE.parent / source).exists(), f"{name}: mounts missing {source}"
            else:
                assert source in (doc.get("volumes") or {}), f"{name}: undeclared volume {source}"
        for dep in svc.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for key in ("image",):
            if key in svc and "build" not in svc:
                assert re.search(r":[\w.-]+$", svc[key]), f"{name}: pin the image tag"


def test_compose_replicas_share_postgres_and_forward_to_jaeger() -> None:
    doc = compose()
    services = doc["services"]
    pg = services["postgres"]["environment"]
    for name, svc in mltrace_services(doc).items():
        env = svc["environment"]
        db = env["MLTRACE_DB"]
        m = re.fullmatch(r"postgresql://(\w+):(\S+)@(\w[\w-]*):(\d+)/(\w+)", db)
        assert m, f"{name}: MLTRACE_DB {db!r} is not a postgresql:// URL"
        user, password, host, port, dbname = m.groups()
        assert host in services and port == "5432", name
        assert (user, password, dbname) == (
            pg["POSTGRES_USER"],
            pg["POSTGRES_PASSWORD"],
            pg["POSTGRES_DB"],
        ), f"{name}: MLTRACE_DB does not match the postgres service's credentials"
        forward = env["MLTRACE_FORWARD_ENDPOINT"]
        fhost, fport = forward.split("://", 1)[1].rsplit(":", 1)
        assert fhost in services and fport == "4317", f"{name}: forward to {forward}"
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"


def container_path(svc: Doc, path: str) -> Path | None:
    """The repo path a compose bind mount puts at ``path`` inside the container."""
    best: tuple[int, Path] | None = None
    for volume in svc.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith(".") and (path == target or path.startswith(target + "/")):
            if best is None or len(target) > best[0]:
                best = (len(target), COMPOSE.parent / source / path[len(target) :].lstrip("/"))
    return best[1] if best else None


def test_grafana_provisioning_is_mounted_where_it_points() -> None:
    services = compose()["services"]
    grafana = services["grafana"]
    provisioning = container_path(grafana, "/etc/grafana/provisioning")
    assert provisioning is not None and provisioning.is_dir(), "mount the provisioning folder"
    providers = [
        p for f in sorted((provisioning / "dashboards").glob("*.y*ml"))
        for p in load_yaml(f).get("providers", [])
    ]  # fmt: skip
    assert providers, "no Grafana dashboard provider"
    for provider in providers:
        folder = container_path(grafana, provider["options"]["path"])
        assert folder is not None, f"nothing mounted at {provider['options']['path']}"
        assert list(folder.glob("*.json")), f"{folder}: no dashboards"
    for f in sorted((provisioning / "datasources").glob("*.y*ml")):
        for source in load_yaml(f).get("datasources", []):
            if source["type"] in ("prometheus", "jaeger"):
                host = source["url"].split("://", 1)[1].split(":")[0]
                assert host in services, f"datasource {source['name']}: no service {host}"


def test_prometheus_config_scrapes_every_replica_and_rules_exist() -> None:
    prom = load_yaml(PROMETHEUS)
    doc = compose()
    services = doc["services"]
    replicas = mltrace_services(doc)
    targets = [
        t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    ]
    for target in targets:
        host, port = target.rsplit(":", 1)
        assert host in services, f"prometheus scrapes {target}: no such compose service"
        if host in replicas:
            http_port = port_of(replicas[host]["environment"]["MLTRACE_HTTP_ADDRESS"])
            assert int(port) == http_port, f"{target}: replicas serve /metrics on {http_port}"
    scraped = {t.rsplit(":", 1)[0] for t in targets}
    assert set(replicas) <= scraped, f"unscraped replicas: {set(replicas) - scraped}"
    gateway_metrics = load_yaml(GATEWAY_YAML)["service"]["telemetry"]["metrics"]["readers"][0]
    assert f"gateway:{gateway_metrics['pull']['exporter']['prometheus']['port']}" in targets
    for am in prom["alerting"]["alertmanagers"]:
        for target in am["static_configs"][0]["targets"]:
            assert target == "alertmanager:9093", target
    for pattern in prom.get("rule_files", []):
        assert list(PROMETHEUS.parent.glob(pattern)), f"rule_files {pattern} matches nothing"
    prom_mount = [v for v in services["prometheus"]["volumes"] if "/etc/prometheus" in v]
    assert prom_mount and prom_mount[0].startswith("./prometheus:"), "mount deploy/prometheus"


def test_promtool_accepts_the_prometheus_config() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (scripts/bootstrap.sh installs it)")
    out = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
