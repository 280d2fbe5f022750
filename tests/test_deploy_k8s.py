"""Static validation of ``deploy/k8s/*.yaml`` (no cluster, no kubectl): the Kubernetes
OpenAPI schemas in strict mode (the ``kubernetes-validate`` package) plus cross-references
(probes on ``/healthz`` at the HTTP port, the Secret key the Deployment reads, Service
selectors and target ports, HPA/PDB targets, the gateway ConfigMap equal to the shipped
config), and ``otelcol validate`` of the gateway configs with the collector bootstrap built.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.servers.otelcol import GATEWAY_YAML, validate
from tests.support_deploy import (
    DEPLOY,
    Doc,
    dockerfile_instructions,
    exposed_ports,
    load_yaml,
    port_of,
)

K8S = DEPLOY / "k8s"
K8S_VERSIONS = ("1.30", "1.37")  # oldest and newest Kubernetes the manifests must fit


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
def test_otelcol_validates_the_gateway_configs(otelcol_binary: Path, tmp_path: Path) -> None:
    out = validate(GATEWAY_YAML, binary=otelcol_binary)
    assert out.returncode == 0, out.stdout + out.stderr
    k8s_file = tmp_path / "k8s-gateway.yaml"
    k8s_file.write_text(yaml.safe_dump(k8s_gateway_config()), "utf-8")
    out = validate(k8s_file, binary=otelcol_binary)
    assert out.returncode == 0, out.stdout + out.stderr
    broken = load_yaml(GATEWAY_YAML)
    broken["exporters"]["load_balancing"]["routing_key"] = "no-such-key"
    bad = tmp_path / "broken.yaml"
    bad.write_text(yaml.safe_dump(broken), "utf-8")
    assert validate(bad, binary=otelcol_binary).returncode != 0, "validate must reject a bad key"
