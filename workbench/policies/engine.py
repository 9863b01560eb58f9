"""The findings engine: configured rules over stored traces, and the scans that keep `findings` current.

Three ways in, one code path: `workbench ingest` (no server) scans after its writes, the scanner service
inside `workbench serve` scans after each commit, and `workbench rescan` scans on demand. All of them
call `scan_traces`, which replaces each trace's findings whole (taint chains span steps) and moves the
watermark in the same transaction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.model import Finding, StoredStep
from workbench.policies.builtin import BUILTIN_RULES
from workbench.policies.config import (
    TRUSTED_TOOLS,
    RuleConfigError,
    default_rules_text,
    load_user_rules,
    parse_rules_yaml,
)
from workbench.policies.rewritten import rewritten_findings
from workbench.policies.rules import Rule, TraceView
from workbench.store import findings as store_findings
from workbench.store import queries
from workbench.store.connection import Store

log = logging.getLogger(__name__)

# Bump when a built-in rule changes what it finds: the digest changes and stored findings are rescanned.
RULES_VERSION = 4


class ScanCancelled(Exception):
    """The engine was asked to stop (the server is shutting down); the watermark did not move."""


@dataclass
class Engine:
    """The enabled rules with their configuration, and a digest of that configuration."""

    rules: list[Rule]
    digest: str
    trusted_tools: tuple[str, ...] = ()  # the rules file's `trusted_tools`: results taken as trusted input
    errors: list[str] = field(default_factory=list)  # rule failures of the last evaluate(), for the log
    # Set by a shutting-down server: a scan of a 100k-step trace takes tens of seconds, and stopping must
    # not wait for it. Checked between rules and between traces; the watermark catches up next start.
    cancel: threading.Event = field(default_factory=threading.Event)

    def evaluate(self, trace_id: str, steps: Sequence[StoredStep]) -> list[Finding]:
        """Findings of every rule on one trace (steps in time order). A rule that raises is logged and
        skipped; the others' findings still count."""
        view = TraceView(trace_id, list(steps), self.trusted_tools)
        out: list[Finding] = []
        self.errors = []
        for rule in self.rules:
            if self.cancel.is_set():
                raise ScanCancelled(f"scan of trace {trace_id} cancelled")
            try:
                out.extend(rule.evaluate(view))
            except Exception as exc:  # a broken (user) rule must not stop the others
                message = f"rule {rule.id} failed on trace {trace_id}: {type(exc).__name__}: {exc}"
                log.exception(message)
                self.errors.append(message)
        out.sort(key=lambda f: (f.step_seq, -f.severity.rank, f.rule_id))
        return out


def registry(user_rules: Iterable[type[Rule]] = ()) -> dict[str, type[Rule]]:
    """Rule classes by id: the built-ins, then the user's (which may not reuse an id)."""
    out: dict[str, type[Rule]] = {r.id: r for r in BUILTIN_RULES}
    for r in user_rules:
        if r.id in out:
            raise RuleConfigError(f"user rule {r.__name__} reuses the rule id {r.id!r}")
        out[r.id] = r
    return out


def build_engine(rules_file: Path | None = None, rules_path: Path | None = None) -> Engine:
    """The engine for a configuration: defaults, overridden by the user's YAML, plus user rule classes."""
    user_rules = load_user_rules(rules_path) if rules_path else []
    reg = registry(user_rules)
    merged = parse_rules_yaml(default_rules_text(), "default_rules.yaml", reg)
    trusted = merged.pop(TRUSTED_TOOLS, {}).get(TRUSTED_TOOLS, [])
    user_text = ""
    if rules_file is not None:
        try:
            user_text = Path(rules_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise RuleConfigError(f"{rules_file}: cannot read the rules file: {exc.strerror}") from exc
        user = parse_rules_yaml(user_text, str(rules_file), reg)
        if TRUSTED_TOOLS in user:
            trusted = user.pop(TRUSTED_TOOLS)[TRUSTED_TOOLS]  # the user's list replaces the default one
        for rid, values in user.items():
            merged.setdefault(rid, {}).update(values)
    rules: list[Rule] = []
    for rid, cls in reg.items():
        values = dict(merged.get(rid, {}))
        if not values.pop("enabled", True):
            continue
        severity = values.pop("severity", None)
        rules.append(cls(severity, **values))
    fingerprint = {
        "version": RULES_VERSION,
        "trusted_tools": sorted(trusted),
        "config": {rid: {k: str(v) for k, v in vals.items()} for rid, vals in sorted(merged.items())},
        "rules": sorted(reg),
        "user_sources": [_file_digest(p) for p in _user_files(rules_path)],
    }
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]
    return Engine(rules, digest, tuple(trusted))


def engine_from_settings(settings: Any) -> Engine:
    """The engine for a Settings object (its `rules_file` and `rules_path`)."""
    return build_engine(getattr(settings, "rules_file", None), getattr(settings, "rules_path", None))


def _user_files(path: Path | None) -> list[Path]:
    if path is None:
        return []
    return sorted(path.glob("*.py")) if path.is_dir() else [path]


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


@dataclass
class ScanReport:
    traces: int = 0
    findings: int = 0
    errors: list[str] = field(default_factory=list)


def scan_traces(
    store: Store, engine: Engine, trace_ids: Iterable[str], *, watermark: int | None = None, chunk: int = 50
) -> ScanReport:
    """Recompute and replace the findings of these traces; the watermark moves with the last chunk."""
    ids = list(dict.fromkeys(trace_ids))
    report = ScanReport()
    if not ids and watermark is not None:
        store_findings.replace_findings(store, {}, watermark=watermark, rules_digest=engine.digest)
    for k in range(0, len(ids), chunk):
        part = ids[k : k + chunk]
        by_trace = {}
        steps = queries.steps_by_trace(store, part)  # one read for the chunk, not one per trace
        versions = queries.span_versions_by_trace(store, part)
        for trace_id in part:
            if engine.cancel.is_set():
                raise ScanCancelled("scan cancelled")
            by_trace[trace_id] = engine.evaluate(trace_id, steps[trace_id]) + rewritten_findings(
                store, trace_id, versions[trace_id]
            )
            report.errors += engine.errors
        last = k + chunk >= len(ids)
        report.findings += store_findings.replace_findings(
            store, by_trace, watermark=watermark if last else None, rules_digest=engine.digest
        )
        report.traces += len(part)
    return report


def catch_up_ids(store: Store, engine: Engine) -> tuple[list[str], int] | None:
    """The traces a catch-up must scan and the watermark it reaches; None when nothing is new."""
    scanned, digest = store_findings.scan_watermark(store)
    first = store.seq_range[0]  # 1, or in a lake node the start of its own slice (it catches up on that)
    top = max(store_findings.max_step_seq(store), first - 1)
    if digest != engine.digest:
        return store_findings.traces_in_range(store, first, top), top
    if top > scanned:
        return store_findings.traces_in_range(store, scanned + 1, top), top
    return None


def catch_up(store: Store, engine: Engine) -> ScanReport:
    """Scan what is new since the watermark; everything when the rule configuration changed."""
    todo = catch_up_ids(store, engine)
    if todo is None:
        return ScanReport()
    ids, top = todo
    return scan_traces(store, engine, ids, watermark=top)


def rescan(store: Store, engine: Engine, trace_id: str | None = None) -> ScanReport:
    """Scan one trace, or every trace (then the watermark covers everything stored)."""
    if trace_id is not None:
        return scan_traces(store, engine, [trace_id])
    top = store_findings.max_step_seq(store)
    return scan_traces(store, engine, store_findings.traces_in_range(store, 1, top), watermark=top)
