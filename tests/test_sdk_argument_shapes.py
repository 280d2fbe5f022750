"""``run(inputs=…/outputs=…/tags=…)`` given one object that merely *iterates* is a mistake
named at once, not a silent list of its pieces.

Found in the issue-12 acceptance audit: ``run("train", inputs=X)`` with a NumPy array
declared one in-memory input artifact per row of ``X``; ``inputs=df`` (a DataFrame) one
artifact per column *name* (then ``FileNotFoundError: artifact path 'a'``), and
``inputs={"features": path}`` the dict's keys as paths.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import otel_mltrace as mlt


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (np.zeros((1000, 3)), "ndarray of shape (1000, 3)"),
        (pd.DataFrame({"a": [1, 2]}), "DataFrame of shape (2, 1)"),
        (pd.Series([1.0, 2.0]), "Series of shape (2,)"),
        ({"features": "features.csv"}, "dict {'features': 'features.csv'}"),
    ],
)
@pytest.mark.parametrize("argument", ["inputs", "outputs", "tags"])
def test_one_iterable_object_is_not_taken_as_a_list(
    spans: Any, argument: str, value: object, shown: str
) -> None:
    with pytest.raises(TypeError) as err:
        mlt.run("train", **{argument: value})  # type: ignore[arg-type]
    message = str(err.value)
    assert message.startswith(f"{argument} must be a list, got {shown}; ")
    assert f"wrap a single item: {argument}=[item]" in message
    if isinstance(value, dict):
        assert f"{argument}=list(d.values())" in message
    assert spans.get_finished_spans() == ()  # no run was started


def test_lists_tuples_and_generators_of_objects_still_work(spans: Any) -> None:
    frame = pd.DataFrame({"a": [1, 2]})
    with mlt.run("train", inputs=(frame, np.zeros(3)), outputs=iter(["mem://m"])) as run:
        pass
    (span,) = spans.get_finished_spans()
    assert span.attributes is not None
    assert len(span.attributes["mltrace.inputs"]) == 2 and run.component == "train"
