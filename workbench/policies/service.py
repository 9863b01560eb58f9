"""The one line `workbench serve` calls: a FindingsScanner for these settings, store and pipeline."""

from __future__ import annotations

from typing import Any

from workbench.policies.engine import engine_from_settings
from workbench.policies.scanner import FindingsScanner
from workbench.store.connection import Store


def findings_service(settings: Any, store: Store, pipeline: Any) -> FindingsScanner:
    """Builds the engine now, so a bad rules file stops `serve` at start with its file and line."""
    return FindingsScanner(store, engine_from_settings(settings), pipeline)
