"""Reading OTLP trace files: OTLP/JSON documents, JSON lines (the Collector's file exporter), and
binary protobuf ExportTraceServiceRequest files; any of them gzip-compressed.

A generator of decoded requests, so large files stream batch by batch instead of loading at once.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collectors import decode
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
        req = ExportTraceServiceRequest()
        try:
            req.ParseFromString(data)
        except DecodeError as exc:
            raise BadInput(f"{path}: not an OTLP ExportTraceServiceRequest protobuf: {exc}") from exc
        yield str(path), req, []
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not valid UTF-8 at byte {exc.start}") from exc
    if fmt == "json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
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
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BadInput(f"{where}: malformed JSON at column {exc.colno}: {exc.msg}") from exc
            yield (where, *_parse(item, where))


def _parse(item: object, where: str) -> tuple[ExportTraceServiceRequest, list[str]]:
    if not isinstance(item, dict):
        raise BadInput(f"{where}: expected an OTLP/JSON object with 'resourceSpans'")
    try:
        return decode.parse_json(item)
    except BadInput as exc:
        raise BadInput(f"{where}: {exc}") from exc
