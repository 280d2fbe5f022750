"""``otel_mltrace.extras``: a missing optional package names the extra that installs it;
any other import failure stays what it is. And ``otel-mltrace --version``.
(tests/test_install_extras.py checks the same in fresh virtual environments.)"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner

from otel_mltrace.cli import main
from otel_mltrace.extras import MissingExtra, require


def test_missing_module_names_the_extra() -> None:
    with pytest.raises(MissingExtra) as caught:
        require("no_such_module_xyz.client", extra="openlineage", feature="OpenLineage export")
    message = str(caught.value)
    assert message == (
        "OpenLineage export needs the Python module 'no_such_module_xyz', which is not "
        "installed: pip install 'otel-mltrace[openlineage]'"
    )
    assert isinstance(caught.value, ModuleNotFoundError)


def test_present_module_is_returned() -> None:
    assert require("sqlite3", extra="x", feature="y") is sys.modules["sqlite3"]


def test_a_broken_installed_module_is_not_blamed_on_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The package is there but imports something missing: that error, unchanged."""
    (tmp_path / "half_installed_pkg.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as caught:
        require("half_installed_pkg", extra="x", feature="y")
    assert not isinstance(caught.value, MissingExtra)
    assert caught.value.name == "no_such_dependency_xyz"


def test_version_option() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"otel-mltrace, version {metadata.version('otel-mltrace')}\n"
