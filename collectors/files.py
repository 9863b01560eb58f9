"""Reading OTLP files: OTLP/JSON documents, JSON lines (the Collector's file exporter), and binary
protobuf Export*ServiceRequest files; any of them gzip-, zlib/deflate- or zstd-compressed.

Traces and logs both: the Collector's file exporter writes `{"resourceSpans": ...}` and
`{"resourceLogs": ...}` lines into the same kind of file, so the signal is read per document (per line),
from its top-level key. A protobuf file is a trace request unless its name says logs (`*logs*.pb`) or
it only parses as one.

A generator of decoded requests, so large files stream batch by batch instead of loading at once.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from collectors import decode, decode_logs, json_depth
from workbench.errors import BadInput

_PROTO_SUFFIXES = {".pb", ".bin", ".protobuf", ".proto"}
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# The suffixes of compressed files, stripped before the format is read from the name.
COMPRESSED_SUFFIXES = (".gz", ".deflate", ".zlib", ".zst", ".zstd")


def _open(path: Path) -> bytes:
    """The file's bytes, decompressed when it is gzip (by its magic bytes), zstd (magic) or deflate
    (by its name: zlib-wrapped or raw, as HTTP's `deflate` is met in both forms)."""
    with path.open("rb") as fh:
        head = fh.read(4)
    name = path.name.lower()
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz:
                return gz.read()
        except (OSError, EOFError) as exc:
            raise BadInput(f"{path}: broken gzip data: {exc}") from exc
    if head == _ZSTD_MAGIC or name.endswith((".zst", ".zstd")):
        import zstandard

        try:
            with path.open("rb") as fh, zstandard.ZstdDecompressor().stream_reader(fh) as reader:
                return reader.read()
        except zstandard.ZstdError as exc:
            raise BadInput(f"{path}: broken zstd data: {exc}") from exc
    if name.endswith((".deflate", ".zlib")):
        data = path.read_bytes()
        for wbits in (zlib.MAX_WBITS, -zlib.MAX_WBITS):
            try:
                return zlib.decompress(data, wbits)
            except zlib.error as exc:
                error = exc
        raise BadInput(f"{path}: broken deflate data: {error}")
    return path.read_bytes()


def _plain_name(path: Path) -> str:
    name = path.name
    for suffix in COMPRESSED_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def file_format(path: Path) -> str:
    """'protobuf', 'json' or 'jsonl', from the name (ignoring a compression suffix) and, failing that,
    the content."""
    suffix = Path(_plain_name(path)).suffix.lower()
    if suffix in _PROTO_SUFFIXES:
        return "protobuf"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    return "json"


def read_requests(path: Path) -> Iterator[tuple[str, Message, list[str]]]:
    """(location, request, records left out) triples; location names the file and line for error
    messages. The request is an ExportTraceServiceRequest or an ExportLogsServiceRequest (per document);
    each span or log record of an OTLP/JSON document that could not be read has a message of its own."""
    data = _open(path)
    fmt = file_format(path)
    if fmt == "protobuf":
        yield (str(path), *_parse_protobuf(path, data))
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not valid UTF-8 at byte {exc.start}") from exc
    if fmt == "json":
        try:
            doc = json_depth.loads(text)
        except BadInput:
            fmt = "jsonl"  # a .json file holding one document per line, as the Collector writes them
        else:
            for i, item in enumerate(doc if isinstance(doc, list) else [doc]):
                where = f"{path}[{i}]" if isinstance(doc, list) else str(path)
                yield (where, *_parse(item, where))
            return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            where = f"{path}:{lineno}"
            try:
                item = json_depth.loads(line)
            except BadInput as exc:
                raise BadInput(f"{where}: {exc}") from exc
            yield (where, *_parse(item, where))


def _parse_protobuf(path: Path, data: bytes) -> tuple[Message, list[str]]:
    """A trace request, or a logs request when the file's name says logs; a bad record costs only itself."""
    logs = "log" in _plain_name(path).lower()
    try:
        if logs:
            return decode_logs.parse_protobuf(data)
        return decode.parse_protobuf(data)
    except BadInput as exc:
        kind = "ExportLogsServiceRequest" if logs else "ExportTraceServiceRequest"
        raise BadInput(f"{path}: not an OTLP {kind} protobuf: {exc}") from exc


def is_logs(request: Message) -> bool:
    """Whether a request read from a file holds log records (else spans)."""
    return isinstance(request, ExportLogsServiceRequest)


def _parse(item: Any, where: str) -> tuple[Message, list[str]]:
    if not isinstance(item, dict):
        raise BadInput(f"{where}: expected an OTLP/JSON object with 'resourceSpans' or 'resourceLogs'")
    try:
        if ("resourceLogs" in item or "resource_logs" in item) and not (
            "resourceSpans" in item or "resource_spans" in item
        ):
            return decode_logs.parse_json(item)
        return decode.parse_json(item)
    except BadInput as exc:
        raise BadInput(f"{where}: {exc}") from exc
