"""The query API over HTTP (FastAPI): the index's questions, their errors and statuses."""
