"""A span's way in after the receivers: the ingest pipeline, its decode and write workers,
and the group commit that acknowledges only what is durably written."""
