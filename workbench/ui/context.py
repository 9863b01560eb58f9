"""Which Store the pages read: the one `workbench serve` opened, set by the UI service (or by a test).

Why a module global: Streamlit runs page scripts on its own threads but imports modules once per
process, so this is how the process's single Store (one DuckDB owner per file) reaches the pages.
Run outside `workbench serve` (e.g. `streamlit run`), the pages open the database read-only instead.
"""

from __future__ import annotations

import threading

from workbench.settings import Settings
from workbench.store.connection import Store
from workbench.store.lake import open_store

_lock = threading.Lock()
_store: Store | None = None
_settings: Settings | None = None


def set_store(store: Store | None, settings: Settings | None = None) -> None:
    """Point the pages at this store (None forgets it)."""
    global _store, _settings
    with _lock:
        _store, _settings = store, settings


def get_store() -> Store:
    """The process's store; without one, the configured database opened read-only (raises WorkbenchError)."""
    global _store, _settings
    with _lock:
        if _store is None:
            _settings = _settings or Settings.from_env()
            _store = open_store(_settings, read_only=True)
        return _store


def get_settings() -> Settings:
    with _lock:
        return _settings or Settings.from_env()
