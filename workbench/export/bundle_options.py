"""What an export is asked for and what it gives back: options, result, the bundle schema name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.store import entries
from workbench.store.verify import RowCheck
from workbench.store.verify_derived import StepDeriver

SCHEMA = "agent-audit-workbench/bundle"
SCHEMA_VERSION = 3  # 2: spans.pb, entries.jsonl, the external checkpoint; 3: logs.pb, logs.jsonl
CHUNK = 5_000


class LedgerBroken(WorkbenchError):
    """The database no longer matches its own ledger: exporting it would certify altered records."""


@dataclass
class ExportOptions:
    """What to export and how. Empty trace_ids and no times: everything."""

    out: Path
    trace_ids: Sequence[str] = ()
    since_ns: int | None = None
    until_ns: int | None = None
    redact_kinds: Sequence[str] = ()
    row_check: RowCheck | None = None  # the CLI passes collectors' column check (floor 3 may import it)
    # collectors.normalize.NORMALIZER_VERSION, passed in by floor 3 like row_check: the manifest records
    # it so that `workbench verify` re-derives steps with the same mapping.
    normalizer_version: str | None = None
    # collectors.integrity.step_deriver(), passed in by floor 3: the selected steps are re-derived from
    # their sealed spans before anything is signed, so an edited step row is refused, not certified.
    derive: StepDeriver | None = None
    # A checkpoint log or file of signed tree heads kept outside the database (WORKBENCH_CHECKPOINT_LOG or
    # `export --checkpoint`): the bundle carries the latest head in it and proves its trees extend it.
    checkpoint: Path | None = None
    progress: bool = False
    # Called with (spans written, spans selected) after each chunk: the UI's progress bar. It runs on the
    # exporting thread, so it must be quick.
    on_progress: Callable[[int, int], None] | None = None


@dataclass
class ExportResult:
    path: Path
    bundle_id: str
    counts: dict[str, int]
    reveal_path: Path | None
    key_id: str
    redactions: dict[str, int] = field(default_factory=dict)


# The derived-row files and how each row names the ledger entry that seals it.
SEALED_TABLES: tuple[tuple[str, str], ...] = (
    ("findings.jsonl", entries.FINDING),
    ("annotations.jsonl", entries.ANNOTATION),
    ("probe_results.jsonl", entries.PROBE_RESULT),
)


def entry_ref(kind: str, row: dict[str, Any]) -> str:
    """The `ref` of the ledger entry sealing an exported row (entries.PROBE_REF for probe results)."""
    if kind == entries.PROBE_RESULT:
        return f"{row.get('run_id')}/{row.get('analysis')}"
    return str(row.get("id"))
