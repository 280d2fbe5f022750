"""Artifact ID syntax shared by the SDK and the index: ``URI@version``.

Part of the wire contract: the SDK writes these IDs, the collector splits them.

Example::

    from otel_mltrace.artifact_ids import split_artifact_id

    uri, version = split_artifact_id("file:///d/x.csv@sha256:ab12")
"""

from __future__ import annotations


def split_artifact_id(artifact_id: str) -> tuple[str, str | None]:
    """``"URI@algo:hex"`` -> ``("URI", "algo:hex")``; an unversioned URI -> ``(URI, None)``.

    The version is what follows the *last* ``@`` when it looks like ``algo:digest`` or a
    user version ``v:…``; an ``@`` inside a URI (``s3://user@host/x``) is left alone.

    >>> split_artifact_id("file:///d/x.csv@sha256:ab12")
    ('file:///d/x.csv', 'sha256:ab12')
    >>> split_artifact_id("s3://bucket/key")
    ('s3://bucket/key', None)
    """
    head, sep, tail = artifact_id.rpartition("@")
    if sep and head and ":" in tail and "/" not in tail:
        algo = tail.split(":", 1)[0]
        if algo and algo.replace("-", "").replace("_", "").isalnum():
            return head, tail
    return artifact_id, None
