"""The one line `workbench serve` calls: a FindingsScanner for these settings, store and pipeline."""

from __future__ import annotations

from typing import Any

from workbench.policies.engine import engine_from_settings
from workbench.policies.scanner import FindingsScanner
from workbench.store.connection import Store


def findings_service(settings: Any, store: Store, pipeline: Any) -> FindingsScanner:
    """Builds the engine now, so a bad rules file stops `serve` at start with its file and line. In lake
    mode the scanner takes each trace's lease in the catalog, so one node at a time scans it."""
    engine = engine_from_settings(settings)
    leases = None
    if store.is_lake and getattr(settings, "lake", None):
        from workbench.store.lake_lease import LeaseTable

        leases = LeaseTable(settings.lake, store.node_id or "node")
    return FindingsScanner(store, engine, pipeline, leases=leases)
