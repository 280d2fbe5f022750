"""How the C reader ``_otlp_fast`` is built from its translation units (issue 14).

The extension is several ``_otlp_fast*.c`` files sharing the internal header ``_otlp_fast.h``.
pyproject.toml lists the units by name while scripts/fuzz_otlp_fast.sh and bootstrap.sh glob
them, so a unit added to the folder but not to pyproject would be fuzzed yet missing from
every wheel (an import error that the pure-Python fallback would hide). These tests hold the
lists together, compile every unit with warnings as errors, and check that the built module
exports nothing but its init function (the shared helpers are hidden).

Run: ``.venv/bin/python -m pytest tests/test_otlp_fast_build.py -q``
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parent.parent
DECODE = Path("collector/mltrace_collector/index/decode")
UNITS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / DECODE).glob("_otlp_fast*.c"))
HEADER = str(DECODE / "_otlp_fast.h")


def extension() -> dict[str, object]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    (ext,) = config["ext-modules"]
    assert isinstance(ext, dict)
    return ext


def test_pyproject_builds_every_unit_and_ships_the_header() -> None:
    ext = extension()
    assert len(UNITS) >= 2
    assert sorted(ext["sources"]) == UNITS  # type: ignore[call-overload]
    assert ext["depends"] == [HEADER]
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["mltrace_collector"]
    assert "index/decode/_otlp_fast.h" in package_data


def test_every_unit_compiles_without_warnings(tmp_path: Path) -> None:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    include = sysconfig.get_paths()["include"]
    for unit in UNITS:
        out = tmp_path / (Path(unit).stem + ".o")
        flags = ["-c", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", f"-I{include}"]
        done = subprocess.run(
            [cc, *flags, unit, "-o", str(out)], cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{unit}:\n{done.stderr}"


def test_built_module_exports_only_its_init() -> None:
    fast = pytest.importorskip("mltrace_collector.index.decode._otlp_fast")
    nm = shutil.which("nm")
    if nm is None or sys.platform != "linux":
        pytest.skip("needs nm on Linux")
    listing = subprocess.run(
        [nm, "-D", "--defined-only", fast.__file__], capture_output=True, text=True, check=True
    ).stdout
    exported = {line.split()[-1] for line in listing.splitlines() if line.strip()}
    assert exported == {"PyInit__otlp_fast"}, sorted(exported)
