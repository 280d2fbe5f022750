"""HTTP ``Content-Encoding`` decoders for OTLP/HTTP, each bounded in decompressed size.

The set and the meaning of each name match the OpenTelemetry Collector's ``confighttp``
server (``compression.go``), so anything an OTel Collector's ``otlphttp`` exporter sends
is understood:

- ``gzip`` (and ``x-gzip``), concatenated members allowed;
- ``deflate`` and ``zlib``: the zlib format (RFC 1950), as Go's ``compress/zlib``;
- ``zstd``: Zstandard frames (concatenated frames allowed);
- ``snappy``: the snappy *block* format, unless the body starts with the 10-byte stream
  identifier of the snappy *framing* format (``ff 06 00 00 sNaPpY``), which the OTel
  Collector before v0.125 sent under this name — exactly the Collector's auto-detection;
- ``x-snappy-framed``: the snappy framing format;
- ``lz4``: the LZ4 *frame* format (what ``pierrec/lz4`` reads), concatenated frames allowed.

Every decoder stops as soon as the output would exceed ``limit`` bytes and raises
:class:`TooLarge` (the receiver answers 413), so a compression bomb costs at most
``limit`` bytes of memory; corrupt or truncated data raises :class:`BadData` (400).

Example::

    coding = content_coding(request.headers.get("content-encoding"))  # may raise Unsupported
    decoder = decoder_for(coding, limit=64 << 20)
    for chunk in body_chunks:
        decoder.feed(chunk)
    body = decoder.finish()
"""

from __future__ import annotations

import io
import zlib
from typing import Protocol

import cramjam
import lz4.frame  # type: ignore[import-untyped]  # no stubs; LZ4 frame format
import zstandard

__all__ = [
    "ACCEPT_ENCODING",
    "BUFFERED",
    "SUPPORTED",
    "BadData",
    "Decoder",
    "TooLarge",
    "Unsupported",
    "content_coding",
    "decoder_for",
]

SUPPORTED = ("gzip", "x-gzip", "deflate", "zlib", "zstd", "snappy", "x-snappy-framed", "lz4")
"""Content codings accepted on ``/v1/traces`` (besides ``identity``)."""
ACCEPT_ENCODING = ", ".join((*SUPPORTED, "identity"))
BUFFERED = frozenset({"zstd", "lz4", "snappy", "x-snappy-framed"})
"""Codings decoded in one go by ``finish()`` (CPU-bound: run it off the event loop)."""

_GZIP_WBITS, _ZLIB_WBITS = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS
_SNAPPY_STREAM_ID = b"\xff\x06\x00\x00sNaPpY"
_READ = 1 << 20  # decompressed bytes produced per step while checking the limit
_SNAPPY_FEED = 64 * 1024  # framed snappy input per step (each chunk inflates ≤ 64 KiB)


class Unsupported(ValueError):
    """A content coding we do not decode (the receiver answers 415)."""

    def __init__(self, header: str) -> None:
        super().__init__(f"unsupported Content-Encoding {header!r}; use one of {ACCEPT_ENCODING}")
        self.header = header


class BadData(ValueError):
    """The body is not valid data in its declared coding (400)."""


class TooLarge(ValueError):
    """The decompressed body would exceed the limit (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"decompressed body exceeds the limit of {limit} bytes")
        self.limit = limit


class Decoder(Protocol):
    def feed(self, data: bytes) -> None: ...

    def finish(self) -> bytes: ...


def content_coding(header: str | None) -> str | None:
    """The one content coding named by a ``Content-Encoding`` header, ``None`` for identity.

    Example::

        content_coding("zstd")   # -> "zstd"
        content_coding("br")     # raises Unsupported (message names the supported ones)
    """
    codings = [c.strip().lower() for c in (header or "").split(",")]
    codings = [c for c in codings if c and c not in ("identity", "none")]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in SUPPORTED:
        return codings[0]
    raise Unsupported(header or "")


def decoder_for(coding: str, limit: int) -> Decoder:
    """A fresh decoder for ``coding`` (one of :data:`SUPPORTED`) bounded to ``limit`` bytes."""
    if coding in ("gzip", "x-gzip"):
        return _Inflater(_GZIP_WBITS, limit)
    if coding in ("deflate", "zlib"):
        return _Inflater(_ZLIB_WBITS, limit)
    if coding == "zstd":
        return _Buffered(_zstd, limit)
    if coding == "lz4":
        return _Buffered(_lz4, limit)
    if coding == "snappy":
        return _Buffered(_snappy_auto, limit)
    if coding == "x-snappy-framed":
        return _Buffered(_snappy_framed, limit)
    raise Unsupported(coding)


class _Inflater:
    """Streaming gzip/zlib decoder that refuses to produce more than ``limit`` bytes."""

    def __init__(self, wbits: int, limit: int) -> None:
        self._wbits, self._limit = wbits, limit
        self._zlib = zlib.decompressobj(wbits)
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> None:
        while data:
            if self._zlib.eof:  # concatenated gzip members (RFC 1952 §2.2)
                if self._wbits != _GZIP_WBITS:
                    raise BadData("data after the end of the deflate stream")
                self._zlib = zlib.decompressobj(self._wbits)
            try:
                out = self._zlib.decompress(data, self._limit - self._size + 1)
            except zlib.error as exc:
                raise BadData(f"not valid compressed data: {exc}") from None
            self._size += len(out)
            if self._size > self._limit:
                raise TooLarge(self._limit)
            self._parts.append(out)
            data = self._zlib.unused_data if self._zlib.eof else self._zlib.unconsumed_tail

    def finish(self) -> bytes:
        if not self._zlib.eof:
            raise BadData("compressed data is truncated")
        return b"".join(self._parts)


class _Buffered:
    """Collects the compressed body (already bounded by the receiver), then decodes it."""

    def __init__(self, decode: _Decode, limit: int) -> None:
        self._decode, self._limit = decode, limit
        self._parts: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self._parts.append(data)

    def finish(self) -> bytes:
        return self._decode(b"".join(self._parts), self._limit)


class _Decode(Protocol):
    def __call__(self, data: bytes, limit: int) -> bytes: ...


class _Output:
    def __init__(self, limit: int) -> None:
        self.limit, self.size = limit, 0
        self.parts: list[bytes] = []

    def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise TooLarge(self.limit)
        self.parts.append(data)

    def result(self) -> bytes:
        return b"".join(self.parts)


def _zstd(data: bytes, limit: int) -> bytes:
    # stream_reader bounds the output but reports a truncated frame as a clean end, so it
    # only measures; decompressobj (whose output is then known to fit) checks completeness.
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
    size = 0
    try:
        while chunk := reader.read(_READ):
            size += len(chunk)
            if size > limit:
                raise TooLarge(limit)
        out = _Output(limit)
        rest = data
        while rest:
            obj = zstandard.ZstdDecompressor().decompressobj()
            out.add(obj.decompress(rest))
            if not obj.eof:
                raise BadData("zstd data is truncated")
            rest = obj.unused_data
    except zstandard.ZstdError as exc:
        raise BadData(f"not valid zstd data: {exc}") from None
    return out.result()


def _lz4(data: bytes, limit: int) -> bytes:
    out = _Output(limit)
    rest = data
    try:
        while rest:
            frame = lz4.frame.LZ4FrameDecompressor()
            out.add(frame.decompress(rest, max_length=limit - out.size + 1))
            while not frame.eof and not frame.needs_input:
                out.add(frame.decompress(b"", max_length=limit - out.size + 1))
            if not frame.eof:
                raise BadData("lz4 data is truncated")
            rest = frame.unused_data or b""
    except RuntimeError as exc:  # what the lz4 bindings raise for corrupt frames
        raise BadData(f"not valid lz4 frame data: {exc}") from None
    return out.result()


def _snappy_auto(data: bytes, limit: int) -> bytes:
    if data.startswith(_SNAPPY_STREAM_ID):
        return _snappy_framed(data, limit)
    try:
        declared = cramjam.snappy.decompress_raw_len(data)
    except (cramjam.DecompressionError, OSError) as exc:
        raise BadData(f"not valid snappy block data: {exc}") from None
    if declared > limit:  # the block format states its length up front
        raise TooLarge(limit)
    try:
        return bytes(cramjam.snappy.decompress_raw(data))
    except (cramjam.DecompressionError, OSError) as exc:
        raise BadData(f"not valid snappy block data: {exc}") from None


def _snappy_framed(data: bytes, limit: int) -> bytes:
    """Feed whole chunks (``type u8, length u24le, payload``) a bounded step at a time."""
    if not data.startswith(_SNAPPY_STREAM_ID):
        raise BadData("framed snappy data does not start with the stream identifier")
    out = _Output(limit)
    decompressor = cramjam.snappy.Decompressor()
    start = offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise BadData("framed snappy data is truncated")
        length = int.from_bytes(data[offset + 1 : offset + 4], "little")
        if offset + 4 + length > len(data):
            raise BadData("framed snappy data is truncated")
        offset += 4 + length
        if offset - start >= _SNAPPY_FEED or offset == len(data):
            try:
                piece = data[start:offset]
                if start:  # each call decodes a stream of its own: it needs the identifier
                    piece = _SNAPPY_STREAM_ID + piece
                decompressor.decompress(piece)
                out.add(bytes(decompressor.flush()))
            except (cramjam.DecompressionError, OSError) as exc:
                raise BadData(f"not valid framed snappy data: {exc}") from None
            start = offset
    return out.result()
