"""What the Export page does, kept out of the page script: export a bundle, verify it, list earlier ones.

Why here and not in `workbench.export`: the export takes the collectors' stored-column check
(`collectors.integrity`), which only floor 3 may import, and the UI's choices (bundle names, zip or
directory, pinning the data directory's own key) are the UI's, not the bundle format's.

Inside `workbench serve` the page exports from the server's own Store, so the export runs while the
collectors ingest; spans that arrive meanwhile are simply not selected (the ledger is append-only, and
the bundle's checkpoint covers whatever the ledger held when it was read).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.export import ExportOptions, ExportResult, VerifyResult, export_bundle, signing, verify_bundle
from workbench.store.connection import Store


@dataclass(frozen=True, slots=True)
class BundleSummary:
    """The facts of one bundle an auditor compares first, read from its manifest."""

    path: Path
    bundle_id: str
    created_at: str
    spans: int
    traces: int
    findings: int
    annotations: int
    probe_runs: int
    redactions: int
    merkle_root: str
    chain_head: str
    checkpoint_size: int
    key_id: str
    size_bytes: int
    fingerprint: str = ""  # signing.fingerprint of the manifest's key: what `verify --pubkey` accepts


@dataclass(frozen=True, slots=True)
class Outcome:
    """The last export of a UI session: where it went and what verify said (kept across reruns)."""

    path: Path
    verdict: VerifyResult


def days_ns(first: date, last: date) -> tuple[int, int]:
    """[start of `first`, end of `last`) in UTC nanoseconds: a date range as a person means it."""
    start = datetime.combine(first, time.min, UTC)
    end = datetime.combine(last, time.min, UTC) + timedelta(days=1)
    return int(start.timestamp()) * 1_000_000_000, int(end.timestamp()) * 1_000_000_000


def exports_dir(data_dir: Path) -> Path:
    return data_dir / "exports"


def new_bundle_path(data_dir: Path, as_zip: bool, now: datetime | None = None) -> Path:
    """A fresh name under DATA_DIR/exports (the CLI's naming), never one that exists already."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    suffix = ".zip" if as_zip else ""
    base = exports_dir(data_dir)
    path = base / f"bundle-{stamp}{suffix}"
    n = 2
    while path.exists():
        path = base / f"bundle-{stamp}-{n}{suffix}"
        n += 1
    return path


def run_export(
    store: Store,
    data_dir: Path,
    *,
    trace_ids: list[str],
    since_ns: int | None,
    until_ns: int | None,
    redact_kinds: tuple[str, ...],
    as_zip: bool,
    on_progress: Callable[[int, int], None] | None = None,
    checkpoint_log: Path | None = None,
) -> ExportResult:
    """Write a signed bundle, exactly as `workbench export` would, from the store the server holds; with
    the server's checkpoint log (once it has written one), the bundle carries its latest signed head."""
    from collectors.integrity import step_deriver, stored_columns_check
    from collectors.normalize import NORMALIZER_VERSION

    if since_ns is not None and until_ns is not None and since_ns >= until_ns:
        raise WorkbenchError("the time range is empty: its start is not before its end")
    return export_bundle(
        store,
        data_dir,
        ExportOptions(
            out=new_bundle_path(data_dir, as_zip),
            trace_ids=trace_ids,
            since_ns=since_ns,
            until_ns=until_ns,
            redact_kinds=redact_kinds,
            row_check=stored_columns_check(),
            derive=step_deriver(store),
            normalizer_version=NORMALIZER_VERSION,
            on_progress=on_progress,
            checkpoint=checkpoint_log if checkpoint_log is not None and checkpoint_log.is_file() else None,
        ),
    )


def verify_own(data_dir: Path, result: ExportResult) -> VerifyResult:
    """Verify a bundle just written, pinning this data directory's key and checking every redaction
    against the reveal file. One process (jobs=1): forking worker processes from the threaded server
    is not safe."""
    from collectors.normalize import NORMALIZER_VERSION, step_from_canonical

    pub = signing.load_or_create_public(data_dir)
    reveal = result.reveal_path.read_bytes() if result.reveal_path else None
    return verify_bundle(
        result.path,
        pubkey=signing.public_pem(pub),
        reveal=reveal,
        jobs=1,
        derive=step_from_canonical,
        normalizer_version=NORMALIZER_VERSION,
    )


@dataclass(frozen=True, slots=True)
class SigningKey:
    """The data directory's public signing key as the Export page offers it: what to pin, and the file."""

    fingerprint: str
    pem: bytes
    path: Path


def signing_key(data_dir: Path) -> SigningKey:
    """The public half of this data directory's key (created, with signing.pub.pem, if there is none)."""
    pub = signing.load_or_create_public(data_dir)
    return SigningKey(signing.fingerprint(pub), signing.public_pem(pub), signing.public_key_path(data_dir))


def read_manifest(path: Path) -> dict[str, Any]:
    """manifest.json of a bundle directory or zip (WorkbenchError naming the bundle if unreadable)."""
    try:
        if path.is_dir():
            raw = (path / "manifest.json").read_bytes()
        else:
            with zipfile.ZipFile(path) as zf:
                raw = zf.read("manifest.json")
        manifest = json.loads(raw)
    except (OSError, KeyError, zipfile.BadZipFile, ValueError) as exc:
        raise WorkbenchError(f"{path}: no readable manifest.json ({exc})") from exc
    if not isinstance(manifest, dict):
        raise WorkbenchError(f"{path}: manifest.json is not a JSON object")
    return manifest


def summarize(path: Path) -> BundleSummary:
    """The summary of the bundle at `path` (directory or zip)."""
    m = read_manifest(path)
    counts = m.get("counts", {})
    covered = m.get("ledger", {}).get("covered", {})
    size = (
        sum(f.stat().st_size for f in path.iterdir() if f.is_file()) if path.is_dir() else path.stat().st_size
    )
    return BundleSummary(
        path=path,
        bundle_id=str(m.get("bundle_id", "")),
        created_at=str(m.get("created_at", "")),
        spans=int(counts.get("spans", 0)),
        traces=int(counts.get("traces", 0)),
        findings=int(counts.get("findings", 0)),
        annotations=int(counts.get("annotations", 0)),
        probe_runs=int(counts.get("probe_runs", 0)),
        redactions=int(counts.get("redactions", 0)),
        merkle_root=str(covered.get("merkle_root", "")),
        chain_head=str(covered.get("chain_head", "")),
        checkpoint_size=int(m.get("ledger", {}).get("checkpoint", {}).get("tree_size", 0)),
        key_id=str(m.get("signing", {}).get("key_id", "")),
        size_bytes=size,
        fingerprint=_fingerprint(m),
    )


def _fingerprint(manifest: dict[str, Any]) -> str:
    """The fingerprint of the key the manifest names ("" when it names none readable)."""
    try:
        raw = str(manifest.get("signing", {}).get("public_key", ""))
        return signing.fingerprint(signing.load_public_key(raw.encode("ascii", "replace"), "manifest"))
    except (WorkbenchError, AttributeError):
        return ""


def list_bundles(data_dir: Path) -> tuple[list[BundleSummary], list[str]]:
    """Bundles under DATA_DIR/exports, newest first, and one line per entry that is not a readable
    bundle (so a damaged one is named, not silently hidden). Half-written `.part-` folders and the
    reveal folder are not bundles."""
    base = exports_dir(data_dir)
    if not base.is_dir():
        return [], []
    found: list[BundleSummary] = []
    problems: list[str] = []
    for entry in base.iterdir():
        if entry.name.startswith(".") or entry.name == "reveal":
            continue
        if not (entry.is_dir() or entry.suffix.lower() == ".zip"):
            continue
        try:
            found.append(summarize(entry))
        except (WorkbenchError, OSError, ValueError, TypeError) as exc:
            problems.append(str(exc))
    found.sort(key=lambda b: b.created_at, reverse=True)
    return found, problems
