"""What the static deployment checks (tests/test_deploy_*.py) share: the paths of the
shipped deployment files and loaders for YAML, the compose file and the Dockerfile.

Usage::

    from tests.support_deploy import compose, exposed_ports, mltrace_services

    replicas = mltrace_services(compose())  # compose services built from the Dockerfile
    assert exposed_ports() == {4317, 4318}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"

Doc = dict[str, Any]


# -- loaders ----------------------------------------------------------------------------
def load_yaml(path: Path) -> Doc:
    data = yaml.safe_load(path.read_text("utf-8"))
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def compose() -> Doc:
    return load_yaml(COMPOSE)


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


def exposed_ports() -> set[int]:
    ports: set[int] = set()
    for word, rest in dockerfile_instructions():
        if word == "EXPOSE":
            ports |= {int(p.split("/")[0]) for p in rest.split()}
    return ports
