"""The probes' datasets: each builder writes its JSONL file (the same bytes every time, except
AgentDojo's clock-stamped rows: probes/datasets/agentdojo.py), and
`--check` tells CI (and a reviewer) whether a committed file is what its code produces now."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any


def render(rows: Iterable[Mapping[str, Any]]) -> str:
    """One JSON object per line, keys sorted, UTF-8 as is: a stable text, so git diffs show real changes."""
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)


def write_or_check(files: Sequence[tuple[Path, str]], argv: Sequence[str], module: str) -> int:
    """Write each (path, text); with --check in argv write nothing and return 1 if any file differs."""
    if "--check" not in argv:
        for path, text in files:
            path.write_text(text, encoding="utf-8")
        return 0
    stale = [p.name for p, text in files if not p.exists() or p.read_text(encoding="utf-8") != text]
    if stale:
        print(f"stale: {', '.join(stale)} (run python -m {module})", file=sys.stderr)
        return 1
    return 0
