"""Grafana provisioning (deploy/grafana/): offline schema validation of the dashboards, and
every PromQL expression of every dashboard panel and every Prometheus rule evaluated
against the real Prometheus of the end-to-end run (tests/servers/fixtures_prometheus.py).

Schema: Grafana's dashboard JSON Schema is not published on PyPI or npm (the
grafana-foundation-sdk wheel and npm package and @grafana/schema ship code and TypeScript
types only; the JSON Schema files live in the SDK's Git repository). We validate with the
models of ``grafana-foundation-sdk`` (PyPI, generated from Grafana's schema kinds): every
dashboard must decode into them — panel options by panel type, queries as Prometheus
data queries — and re-encode without losing a key or changing a value, so a misspelled or
unknown key anywhere, or an unknown panel type, fails.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.servers.fixtures_prometheus import MltraceStack

pytestmark = pytest.mark.timeout(600)

GRAFANA = Path(__file__).resolve().parents[1] / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "mltrace.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "mltrace.yml"
OUR_GROUPS = {"mltrace-recording", "mltrace-cadence", "mltrace-alerts", "e2e-cadence"}
GRAFANA_MACROS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
}


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _sdk() -> Any:
    try:
        from grafana_foundation_sdk.cog import runtime
        from grafana_foundation_sdk.cog.encoder import JSONEncoder
        from grafana_foundation_sdk.cog.plugins import register_default_plugins
        from grafana_foundation_sdk.models.dashboard import Dashboard
    except ImportError:
        reason = "grafana-foundation-sdk not installed (pip install -e '.[dev]')"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    register_default_plugins()
    return runtime, JSONEncoder, Dashboard


def _lost(original: Any, encoded: Any, path: str = "$") -> list[str]:
    """Paths where ``encoded`` lacks or changed something of ``original``."""
    if isinstance(original, dict):
        if not isinstance(encoded, dict):
            return [f"{path}: object became {type(encoded).__name__}"]
        out: list[str] = []
        for key, value in original.items():
            if key not in encoded:
                out.append(f"{path}.{key}: unknown to the schema")
            else:
                out.extend(_lost(value, encoded[key], f"{path}.{key}"))
        return out
    if isinstance(original, list):
        if not isinstance(encoded, list) or len(original) != len(encoded):
            return [f"{path}: list changed"]
        return [
            p
            for i, (a, b) in enumerate(zip(original, encoded, strict=True))
            for p in _lost(a, b, f"{path}[{i}]")
        ]
    return [] if original == encoded else [f"{path}: {original!r} became {encoded!r}"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_matches_grafana_schema(path: Path) -> None:
    runtime, encoder, dashboard_model = _sdk()
    original = _load(path)
    model = dashboard_model.from_json(original)
    encoded = json.loads(encoder(sort_keys=True).encode(model))
    problems = _lost(original, encoded)
    for panel in original["panels"]:
        if runtime.panelcfg_config(panel["type"]) is None:
            problems.append(f"panel {panel['title']!r}: unknown panel type {panel['type']!r}")
        for target in panel.get("targets", []):
            if target["datasource"]["type"] != "prometheus" or not target.get("expr"):
                problems.append(f"panel {panel['title']!r}: target {target['refId']} not PromQL")
    assert not problems, "\n".join(problems)
    assert original["uid"].startswith("mltrace-") and len(original["uid"]) <= 40


def test_dashboard_set() -> None:
    names = {p.name for p in DASHBOARDS}
    assert names == {"mltrace-overview.json", "mltrace-outputs.json", "mltrace-lineage.json"}
    panels = {p.name: {x["type"] for x in _load(p)["panels"]} for p in DASHBOARDS}
    assert "nodeGraph" in panels["mltrace-lineage.json"]
    assert "heatmap" in panels["mltrace-outputs.json"]
    outputs = _load(GRAFANA / "dashboards" / "mltrace-outputs.json")["panels"]
    heatmap = next(x for x in outputs if x["type"] == "heatmap")
    assert heatmap["targets"][0]["exemplar"] is True and "_bucket" in heatmap["targets"][0]["expr"]
    uids = [_load(p)["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)


def test_provisioning_files() -> None:
    datasources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    by_uid = {d["uid"]: d for d in datasources}
    assert {d["type"] for d in datasources} == {"prometheus", "jaeger", "tempo"}
    prometheus = by_uid["mltrace-prometheus"]
    for dest in prometheus["jsonData"]["exemplarTraceIdDestinations"]:
        assert dest["name"] == "trace_id"  # the exemplar label the collector writes
        assert dest["datasourceUid"] in by_uid and by_uid[dest["datasourceUid"]]["type"] in {
            "jaeger",
            "tempo",
        }
    providers = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert providers and all(p["type"] == "file" for p in providers)
    for path in DASHBOARDS:
        variable = _load(path)["templating"]["list"][0]
        assert variable["type"] == "datasource"
        assert variable["current"]["value"] == "mltrace-prometheus"


# -- PromQL against the real Prometheus ------------------------------------------------------
def _panel_exprs() -> list[tuple[str, str, str]]:
    out = []
    for path in DASHBOARDS:
        for panel in _load(path)["panels"]:
            for target in panel.get("targets", []):
                out.append((path.stem, f"{panel['title']} [{target['refId']}]", target["expr"]))
    return out


def _variable_values(stack: MltraceStack) -> list[dict[str, str]]:
    """Every real (component, output) pair, as template variable values."""
    samples = stack.prometheus.query("group by (component, output) (mltrace_output_values)")
    pairs = [
        {"component": s["metric"]["component"], "output": s["metric"]["output"]} for s in samples
    ]
    assert pairs, "no outputs in Prometheus"
    return pairs


def _substitute(expr: str, values: dict[str, str]) -> str:
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    for name, value in values.items():
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    assert "$__" not in expr and not re.search(r"\$\{?[a-z]", expr.replace('"$1"', "")), expr
    return expr


def test_every_panel_expression_returns_data(mltrace_stack: MltraceStack) -> None:
    prom = mltrace_stack.prometheus
    combos = _variable_values(mltrace_stack)
    empty = []
    checked = 0
    for dashboard, panel, expr in _panel_exprs():
        candidates = (
            [_substitute(expr, v) for v in combos]
            if "$component" in expr
            else [_substitute(expr, {})]
        )
        if not any(prom.query(q) for q in dict.fromkeys(candidates)):
            empty.append(f"{dashboard} / {panel}: {expr}")
        checked += 1
    assert checked >= 20
    assert not empty, "panel queries without data:\n" + "\n".join(empty)


def test_template_variable_queries_return_values(mltrace_stack: MltraceStack) -> None:
    """``label_values(selector, label)`` of each variable, as the PromQL Grafana runs."""
    combos = _variable_values(mltrace_stack)
    for path in DASHBOARDS:
        for variable in _load(path)["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["query"]["query"])
            assert match, variable["query"]
            selector, label = match.groups()
            expr = _substitute(f"group by ({label}) ({selector})", combos[0])
            assert mltrace_stack.prometheus.query(expr), (path.name, variable["name"], expr)


def _strip_strings_outside_braces(expr: str) -> str:
    out, depth, i = [], 0, 0
    while i < len(expr):
        c = expr[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == '"' and depth == 0:
            j = expr.index('"', i + 1)
            out.append('""')
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def vector_selectors(expr: str) -> list[str]:
    """The instant/range vector selectors of a PromQL expression (metric name + matchers).

    >>> vector_selectors('max without (instance) (rate(x_total{a="b"}[5m])) > on (m) y')
    ['x_total{a="b"}', 'y']
    """
    text = _strip_strings_outside_braces(expr)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    found = []
    for m in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?(\s*\()?", text):
        name, matchers, call = m.groups()
        if call or name in _KEYWORDS:
            continue
        found.append(name + (matchers or ""))
    return found


def test_every_rule_expression_returns_data(mltrace_stack: MltraceStack) -> None:
    """Recording rules: the expression returns data. Alerting rules (most are quiet in a
    healthy run): the expression evaluates, and every series it reads has data — so no
    rule refers to a metric or label the exporter does not produce."""
    prom = mltrace_stack.prometheus
    groups = [g for g in prom.rules() if g["name"] in OUR_GROUPS]
    assert {g["name"] for g in groups} == OUR_GROUPS
    problems, alerts, records = [], 0, 0
    for group in groups:
        for rule in group["rules"]:
            assert rule["health"] == "ok", rule
            query = rule["query"]
            if rule["type"] == "recording":
                records += 1
                if not prom.query(query):
                    problems.append(f"record {rule['name']}: no data: {query}")
                continue
            alerts += 1
            prom.query(query)  # raises on a PromQL error
            for selector in vector_selectors(query):
                if not prom.query(selector):
                    problems.append(f"alert {rule['name']}: {selector} has no data")
    assert records >= 15 and alerts == 10, (records, alerts)
    assert not problems, "\n".join(problems)


def test_firing_alerts_expressions_return_data(mltrace_stack: MltraceStack) -> None:
    """The alerts the end-to-end run must fire return their series from the expression."""
    prom = mltrace_stack.prometheus
    by_name = {r["name"]: r["query"] for g in prom.rules() for r in g["rules"]}
    for name, labels in (
        ("MltraceOutputDrift", {("ingest", "pixel_mean")}),
        ("MltraceOutputEmpty", {("export_scores", "scores")}),
        ("MltraceComponentLastRunFailed", {("flaky", "")}),
    ):
        result = prom.query(by_name[name])
        got = {(s["metric"].get("component", ""), s["metric"].get("output", "")) for s in result}
        assert got == labels, (name, got)


def test_all_selector_combinations_are_covered() -> None:
    """Guard for the helper above: it finds the selectors in our own rule files."""
    assert vector_selectors(
        "mltrace:output_drift:max > on (method) group_left () mltrace:output_drift_threshold:max"
    ) == ["mltrace:output_drift:max", "mltrace:output_drift_threshold:max"]
    assert vector_selectors('label_replace(sum by (c) (x), "id", "$1", "c", "(.+)")') == ["x"]
    assert list(itertools.chain(vector_selectors('absent(a{b="c"})'))) == ['a{b="c"}']
