"""Writing a bundle's files: hashing writers, the steps Parquet file, the zip, the owner's reveal file."""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections import Counter
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import orjson

from workbench.export.bundle_options import CHUNK
from workbench.export.redact import Redactor
from workbench.store.connection import Store
from workbench.store.export_queries import SpanSelection, iter_steps

_STEP_TEXT = (
    "name",
    "actor",
    "tool_arguments",
    "tool_result",
    "input_text",
    "output_text",
    "reasoning_text",
    "error",
    "user_id",
    "session_id",
)


class _HashingWriter:
    """A binary file that hashes and counts what goes through it (no second read of large files)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f: IO[bytes] = path.open("wb")
        self._h = hashlib.sha256()
        self.size = 0
        self.lines = 0

    def write(self, data: bytes) -> None:
        self._f.write(data)
        self._h.update(data)
        self.size += len(data)

    def line(self, data: bytes) -> None:
        self.write(data + b"\n")
        self.lines += 1

    def record(self, data: bytes) -> None:
        """One length-delimited record (varint length, then the bytes), as protobuf's writeDelimitedTo."""
        self.write(varint(len(data)) + data)
        self.lines += 1

    def close(self) -> dict[str, Any]:
        self._f.close()
        return {"sha256": self._h.hexdigest(), "bytes": self.size}


def varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def file_entry(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            size += len(block)
    return {"sha256": h.hexdigest(), "bytes": size}


def _tool_version() -> str:
    try:
        return metadata.version("agent-audit-workbench")
    except metadata.PackageNotFoundError:
        return "unknown"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return value.hex()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS)


def _write_steps(
    store: Store, path: Path, selection: SpanSelection, redactor: Redactor
) -> tuple[list[dict[str, Any]], dict[str, int], int]:
    """Stream the selected steps, redacted, into Parquet a chunk at a time (memory stays bounded on a
    100,000-step trace); keep only what the report plots. Returns (kept steps, steps per trace, total)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from workbench.export.report import MAX_PLOTTED_STEPS, MAX_PLOTTED_TRACES
    from workbench.store.batch import STEP_SCHEMA

    schema = pa.schema([pa.field("seq", pa.int64()), *STEP_SCHEMA])
    kept: list[dict[str, Any]] = []
    totals: dict[str, int] = Counter()
    plotted: set[str] = set()
    row_no = 0
    with pq.ParquetWriter(path, schema) as writer:
        for rows in iter_steps(store, selection, CHUNK):
            for row in rows:
                if redactor.enabled:
                    where = {
                        "file": "steps.parquet",
                        "row": row_no,
                        "seq": row["seq"],
                        "span_id": row["span_id"],
                    }
                    for col in _STEP_TEXT:
                        if isinstance(row.get(col), str):
                            row[col] = redactor.text(row[col], where, [col])
                row_no += 1
                trace = row["trace_id"]
                totals[trace] += 1
                if trace not in plotted and len(plotted) < MAX_PLOTTED_TRACES:
                    plotted.add(trace)
                if trace in plotted and totals[trace] <= MAX_PLOTTED_STEPS:
                    kept.append(row)
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
    return kept, dict(totals), row_no


def _zip_dir(src: Path, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(src.iterdir()):
            zf.write(p, p.name)
    os.replace(tmp, dest)


def _write_reveal(data_dir: Path, bundle_id: str, salt: bytes, originals: dict[int, str]) -> Path:
    """The owner's key to the redactions: salt and originals, mode 0600, never in the bundle."""
    folder = data_dir / "exports" / "reveal"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = folder / f"{bundle_id}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            orjson.dumps(
                {
                    "bundle_id": bundle_id,
                    "salt": salt.hex(),
                    "originals": {str(k): v for k, v in originals.items()},
                }
            )
        )
    return path
