"""`compare` tells its runs apart when their IDs share the 13-character prefix it shows.

Run IDs are UUIDv7: the first 13 characters are the start millisecond, so two trainings
started in the same millisecond (a loop in a notebook) used to get the same column
heading ("train 01a24296-5c43" twice) in the CLI table and in Jupyter.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner

import otel_mltrace as mlt
from otel_mltrace import query
from otel_mltrace.cli import main
from otel_mltrace.compare_view import id_prefix_length
from otel_mltrace.run_span import Run
from tests.support_clean_step import clean_step

# two runs started in the same millisecond: only the random part differs
SAME_MS = ("01a24296-5c43-77c1-9d21-dd4102be2951", "01a24296-5c43-78b9-bbc4-938e929246ab")


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("compare_labels")
    step = clean_step(tmp, "compare-labels")
    for run_id, lr in zip(SAME_MS, (0.01, 0.05), strict=True):
        # Run(run_id=…) is what mlt.run() builds, with the ID given instead of drawn
        with Run("train", inputs=[step.clean], params={"lr": lr}, run_id=run_id) as r:
            step.model.write_text(str(lr))
            r.add_output(step.model)
    mlt.flush()
    mlt.shutdown()
    yield step.db


def test_cli_columns_name_each_run_distinctly(index: str) -> None:
    result = CliRunner().invoke(main, ["compare", *SAME_MS, "--db", index], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "train 01a24296-5c43-77 " in result.output
    assert "train 01a24296-5c43-78 " in result.output
    assert "upstream lineage: 01a24296-5c43-77 vs 01a24296-5c43-78" in result.output


def test_notebook_html_names_each_run_distinctly(index: str) -> None:
    with query.connect(db=index) as idx:
        html = idx.compare(*SAME_MS)._repr_html_()
    assert "<th>train 01a24296-5c43-77</th><th>train 01a24296-5c43-78</th>" in html
    assert "<td>01a24296-5c43-78</td>" in html  # the lineage table's "vs run" column


def test_ids_differing_early_stay_13_characters() -> None:
    a, b = "01a24296-5c43-77c1-9d21-dd4102be2951", "01a24297-0000-7000-8000-000000000000"
    assert id_prefix_length([a, b]) == 13
    assert id_prefix_length([a, a]) == 13  # compare A A
    assert id_prefix_length(list(SAME_MS)) == 16
