"""Policy rules over stored agent steps: built-in and user rules, YAML configuration, the findings engine.

Floor 2: imports the data model and the store only. See `rules.py` for the rule contract, `builtin/`
for what ships, `engine.py` for how findings are kept current, `evaluation.py` for precision/recall.

User rule files subclass `workbench.policies.Rule` (README), so the names below stay importable from
here, but lazily (PEP 562): importing the package imports none of its modules. Every module in the
package imports the package first, so an eager import of the engine here made the package, the engine
and the built-in rules import each other; and a process that only needs `rules` should not load the
engine and every built-in rule.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module that defines it
_LAZY = {
    "Engine": "workbench.policies.engine",
    "build_engine": "workbench.policies.engine",
    "catch_up": "workbench.policies.engine",
    "engine_from_settings": "workbench.policies.engine",
    "rescan": "workbench.policies.engine",
    "scan_traces": "workbench.policies.engine",
    "Rule": "workbench.policies.rules",
    "TraceView": "workbench.policies.rules",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    """Load the module that defines `name` on first use; an unknown name (a submodule in `from
    workbench.policies import engine`) raises AttributeError so the ordinary submodule import runs."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
