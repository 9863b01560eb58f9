"""What an export is asked for and what it gives back: options, result, the bundle schema name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.store.verify import RowCheck
from workbench.store.verify_derived import StepDeriver

SCHEMA = "agent-audit-workbench/bundle"
SCHEMA_VERSION = 1
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
