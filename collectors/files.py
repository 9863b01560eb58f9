"""Reading OTLP trace files: OTLP/JSON documents, JSON lines (the Collector's file exporter), and
binary protobuf ExportTraceServiceRequest files; any of them gzip-compressed.

A generator of decoded requests, so large files stream batch by batch instead of loading at once.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collectors import decode, json_depth
from workbench.errors import BadInput

_PROTO_SUFFIXES = {".pb", ".bin", ".protobuf", ".proto"}


def _open(path: Path) -> bytes:
    with path.open("rb") as fh:
        head = fh.read(2)
    if head == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz:
                return gz.read()
        except (OSError, EOFError) as exc:
            raise BadInput(f"{path}: broken gzip data: {exc}") from exc
    return path.read_bytes()


def file_format(path: Path) -> str:
    """'protobuf', 'json' or 'jsonl', from the name (ignoring .gz) and, failing that, the content."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    suffix = Path(name).suffix.lower()
    if suffix in _PROTO_SUFFIXES:
        return "protobuf"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    return "json"


def read_requests(path: Path) -> Iterator[tuple[str, ExportTraceServiceRequest, list[str]]]:
    """(location, request, spans left out) triples; location names the file and line for error
    messages, and each span of an OTLP/JSON document that could not be read has a message of its own."""
    data = _open(path)
    fmt = file_format(path)
    if fmt == "protobuf":
        try:
            req, left_out = decode.parse_protobuf(data)  # a bad span costs only itself
        except BadInput as exc:
            raise BadInput(f"{path}: not an OTLP ExportTraceServiceRequest protobuf: {exc}") from exc
        yield str(path), req, left_out
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


def _parse(item: object, where: str) -> tuple[ExportTraceServiceRequest, list[str]]:
    if not isinstance(item, dict):
        raise BadInput(f"{where}: expected an OTLP/JSON object with 'resourceSpans'")
    try:
        return decode.parse_json(item)
    except BadInput as exc:
        raise BadInput(f"{where}: {exc}") from exc
