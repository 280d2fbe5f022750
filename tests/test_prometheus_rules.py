"""The Prometheus rules in deploy/prometheus/ pass ``promtool check rules`` and their unit
tests (``promtool test rules``, deploy/prometheus/tests/*.yml: every alert firing and not)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
RULES = sorted((DEPLOY / "rules").glob("*.yml"))
RULE_TESTS = sorted((DEPLOY / "tests").glob("*.yml"))
ALERTS = (
    "MltraceOutputDrift",
    "MltraceComponentStale",
    "MltraceComponentFailing",
    "MltraceComponentLastRunFailed",
    "MltraceComponentOverdue",
    "MltraceComponentNeverRun",
    "MltraceNoRunMetrics",
    "MltraceOutputNullRatioSpike",
    "MltraceOutputEmpty",
    "MltraceExportsRefusedForCompression",
)


def _tool(name: str, package: str) -> str:
    """The path of ``name``, or skip the test saying which Debian package brings it."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} not found on PATH (Debian package `{package}`, scripts/bootstrap.sh)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return path


def _promtool() -> str:
    return _tool("promtool", "prometheus")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_rule_files_exist() -> None:
    names = {p.name for p in RULES}
    assert {"mltrace-recording.yml", "mltrace-alerts.yml", "mltrace-cadence.yml"} <= names
    assert RULE_TESTS, "no promtool rule tests in deploy/prometheus/tests/"


def test_promtool_check_rules() -> None:
    proc = _run("check", "rules", *map(str, RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_promtool_test_rules() -> None:
    proc = _run("test", "rules", *map(str, RULE_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAILED" not in proc.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    """Each alert appears in the unit tests at least once with alerts and once without."""
    text = "\n".join(p.read_text() for p in RULE_TESTS)
    defined = (DEPLOY / "rules" / "mltrace-alerts.yml").read_text()
    for alert in ALERTS:
        assert f"alert: {alert}\n" in defined, f"{alert} is not defined"
        blocks = text.split(f"alertname: {alert}\n")[1:]
        assert blocks, f"{alert} has no alert_rule_test"
        firing = [b for b in blocks if b.lstrip().startswith("exp_alerts:\n")]
        quiet = [b for b in blocks if b.lstrip().startswith("exp_alerts: []")]
        assert firing and quiet, f"{alert}: firing={len(firing)} not-firing={len(quiet)} tests"
    assert defined.count("- alert: ") == len(ALERTS), "an alert is missing from ALERTS"


def test_promtool_check_config() -> None:
    """The shipped prometheus.yml (and the rule files it names) is valid."""
    proc = _run("check", "config", str(DEPLOY / "prometheus.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_amtool_check_config() -> None:
    amtool = _tool("amtool", "prometheus-alertmanager")
    config = DEPLOY.parent / "alertmanager" / "alertmanager.yml"
    proc = subprocess.run(
        [amtool, "check-config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
