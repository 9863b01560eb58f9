"""Policy rules over stored agent steps: built-in and user rules, YAML configuration, the findings engine.

Floor 2: imports the data model and the store only. See `rules.py` for the rule contract, `builtin/`
for what ships, `engine.py` for how findings are kept current, `evaluation.py` for precision/recall.
"""

from workbench.policies.engine import (
    Engine,
    build_engine,
    catch_up,
    engine_from_settings,
    rescan,
    scan_traces,
)
from workbench.policies.rules import Rule, TraceView

__all__ = [
    "Engine",
    "Rule",
    "TraceView",
    "build_engine",
    "catch_up",
    "engine_from_settings",
    "rescan",
    "scan_traces",
]
