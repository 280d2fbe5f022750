"""The way into the index: OTLP trace requests decoded into runs and rows.

``processor`` (pure Python) and ``fast_rows`` over the C reader ``_otlp_fast`` give the
same runs; ``span_checks`` and ``isolation`` reject a span the store cannot hold, naming it,
so that one bad span never fails another; ``checks`` reads check events.
"""
