"""Which declared output ``log_records(output, …)`` means; refuses anything else.

Record IDs attach to one output artifact of the run. A string that is not one of the run's
outputs would make the index hold records of an artifact nobody wrote (a phantom), so it
is refused with the outputs the run has and how to declare one. Accepted: the artifact ID
``add_output`` returned, the path or URI the output was declared with (the one declared
output at that location), or a path whose current content is a declared output.

Example::

    out = run.add_output("preds.csv")
    run.log_records(out, ids)            # the ID
    run.log_records("preds.csv", ids)    # the same output, by its path
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_mltrace.run_view import RunView


def _same(declared: str | os.PathLike[str], given: str) -> bool:
    if str(declared) == given:
        return True
    if "://" in given or "://" in str(declared):
        return False
    return os.path.realpath(declared) == os.path.realpath(given)


def output_of(run: RunView, output: Any) -> str:
    """The artifact ID among ``run.outputs`` that ``output`` names; ``ValueError`` if none."""
    if not isinstance(output, str) or not output:
        raise TypeError(
            f"log_records output must be the artifact ID add_output() returned (a str), got "
            f"{type(output).__name__} {output!r}"
        )
    outputs = run.outputs
    if output in outputs:
        return output
    by_uri = [aid for aid in outputs if aid.rsplit("@", 1)[0] == output]
    if "://" not in output and os.path.exists(output):
        from otel_mltrace.artifacts import artifact_id

        aid = artifact_id(output)
        by_uri = (
            [aid]
            if aid in outputs
            else [a for a in outputs if a.rsplit("@", 1)[0] == aid.rsplit("@", 1)[0]]
        )
    if len(by_uri) == 1:
        return by_uri[0]
    later = [x for x in run._later if isinstance(x, str | os.PathLike) and _same(x, output)]
    if later:  # an output argument of @component, declared after the body returns
        from otel_mltrace.artifacts import artifact_id

        return artifact_id(later[0])
    declared = ", ".join(outputs) if outputs else "none yet"
    raise ValueError(
        f"log_records output {output!r} is not an output of run {run.component!r} "
        f"(its outputs: {declared}); declare it first: out = run.add_output(obj_or_path, "
        f"uri=...) and pass log_records(out, ids)"
    )
