"""A bounded differential fuzz run of the C reader (tests/otlp_fuzz.py has the generator,
the mutators and the oracle): generated and mutated ``ExportTraceServiceRequest`` bodies
through the C path and the pure-Python path, equal results or equal rejections, and no
crash on bytes upb rejects. scripts/fuzz_otlp_fast.sh runs the same check for longer with
the extension built under AddressSanitizer + UBSan.
"""

from __future__ import annotations

import random

import pytest

from tests.otlp_fuzz import Stats, check, fuzz, join_fields, split_fields, tree_mutate

pytest.importorskip(
    "mltrace_collector.index.decode._otlp_fast",
    reason="C extension mltrace_collector.index.decode._otlp_fast is not built "
    "(needs a C compiler; "
    "scripts/bootstrap.sh builds it in place)",
)

EXAMPLES, MUTATIONS = 150, 12  # ~2,000 inputs


def test_differential_fuzz_c_reader_against_pure_python() -> None:
    stats = fuzz(EXAMPLES, MUTATIONS, seed=14)
    print(stats.line())
    assert stats.inputs == EXAMPLES * (MUTATIONS + 1)
    # the corpus must exercise every side of the oracle, or it proves little
    assert stats.upb_rejected > stats.inputs // 20
    assert stats.c_declined > stats.inputs // 20
    assert stats.c_compared > stats.inputs // 4
    assert stats.c_rows > EXAMPLES // 4


def test_structure_mutations_keep_framing() -> None:
    """The structural mutator re-frames what it changes: its output still splits into fields
    (so upb sees merges and wrong wire types, not only broken lengths)."""
    from tests.otlp_builders import kvs, request, run_span

    span = run_span("train", inputs=["s3://b/x@sha256:aa"], outputs=["m"])
    span.attributes.extend(kvs({"k": [1, "a"]}))
    raw = request([span]).SerializeToString()
    assert join_fields(split_fields(raw) or []) == raw
    rng = random.Random(3)
    framed = sum(split_fields(tree_mutate(rng, raw)) is not None for _ in range(200))
    assert framed == 200
    stats = Stats()
    for _ in range(200):
        check(tree_mutate(rng, raw), stats)
    assert stats.inputs == 200 and stats.upb_rejected < 100
