"""Undo an OTLP/HTTP body's Content-Encoding without letting a decompression bomb take the memory."""

from __future__ import annotations

import zlib

from workbench.errors import BadInput


def decompress(body: bytes, encoding: str | None, max_size: int) -> bytes:
    """Undo Content-Encoding, refusing output larger than `max_size` (a decompression bomb).

    Streaming with a cap means a 1 GB bomb costs at most `max_size` bytes of memory before it is refused.
    """
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif enc == "deflate":
        wbits = zlib.MAX_WBITS  # zlib-wrapped, as HTTP's "deflate" means; raw deflate retried below
    else:
        raise BadInput(f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none", 415)
    try:
        return _inflate(body, wbits, max_size)
    except zlib.error as exc:
        if enc == "deflate":
            try:
                return _inflate(body, -zlib.MAX_WBITS, max_size)
            except zlib.error:
                pass
        raise BadInput(f"body is not valid {enc} data: {exc}") from exc


_INFLATE_STEP = 1 << 20


def _inflate(body: bytes, wbits: int, max_size: int) -> bytes:
    """Inflate a step at a time, so a bomb is refused holding at most `max_size` bytes of output (one
    call with `max_length` would hold it twice while zlib joins its buffers). Every member of a
    multi-member gzip body is read, as gzip readers do; anything else after the stream is refused."""
    parts: list[bytes] = []
    size = 0
    data = body
    while True:
        d = zlib.decompressobj(wbits)
        while True:
            out = d.decompress(data, _INFLATE_STEP)
            data = d.unconsumed_tail
            size += len(out)
            if size > max_size:
                raise BadInput(
                    f"decompressed body exceeds the limit of {max_size} bytes "
                    "(WORKBENCH_MAX_DECOMPRESSED_BYTES)",
                    413,
                )
            parts.append(out)
            if d.eof or not (out or data):
                break
        if not d.eof:
            raise BadInput(f"compressed body is truncated after {len(body)} bytes")
        data = d.unused_data
        if not data or wbits != 16 + zlib.MAX_WBITS:
            break
    if data:
        raise BadInput(f"{len(data)} bytes of trailing data after the end of the compressed body")
    return b"".join(parts)
