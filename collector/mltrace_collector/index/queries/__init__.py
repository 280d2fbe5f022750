"""The ways out of the index: the lineage questions and their answers.

``lineage_queries.LineageQueries`` (trace, downstream, history, runs, inspect, stale,
review, records, compare) over ``lineage_walk`` and the store's ``graph_reads``;
``render`` draws the answers (tree, JSON, DOT, Mermaid); ``client.RemoteQueries`` asks a
collector the same questions over HTTP.
"""
