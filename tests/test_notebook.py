"""The example notebook runs top to bottom in a real Jupyter kernel (nbclient) and shows
the lineage, the runs DataFrame and the comparison as HTML tables."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "notebooks" / "query_lineage.ipynb"


def _html(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in cell.get("outputs", []))


def test_notebook_traces_lists_and_compares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("MLTRACE_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT", "MLTRACE_DB", "MLTRACE_SERVER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NOTEBOOK_WORKDIR", str(tmp_path))  # the kernel inherits the env
    nb = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    lineage, runs, compare = _html(code[2]), _html(code[3]), _html(code[4])
    assert "upstream lineage of" in lineage and "predict" in lineage
    assert "params.lr" in runs and "metrics.mse" in runs  # the DataFrame's HTML
    assert "≠" in compare and "upstream lineage" in compare
    assert "mse: last=" in "".join(o.get("text", "") for o in code[5].get("outputs", []))
    assert (tmp_path / "lineage.db").exists()
    # a first experience shows answers, not internal objects' reprs
    plain = [
        "".join(o.get("data", {}).get("text/plain", ""))
        for c in code
        for o in c.get("outputs", [])
        if o.get("output_type") == "execute_result" and "text/html" not in o.get("data", {})
    ]
    assert plain == []
    assert "4 runs indexed, 0 dropped" in "".join(o.get("text", "") for o in code[1]["outputs"])
    headings = re.findall(r"<th>(train [0-9a-f-]+)</th>", compare)
    assert len(headings) == 2 and len(set(headings)) == 2  # the two runs told apart
