"""`workbench findings`, `findings eval` and `findings rules`: the policy findings on the CLI.

Findings are computed at ingest and by `workbench serve`; these commands read them, list the rules in
force, and measure the rules against the labelled set (`workbench rescan` recomputes them).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from workbench.cli import render
from workbench.cli.common import open_read_only
from workbench.cli.common import settings as settings_of
from workbench.model import Severity

if TYPE_CHECKING:
    from workbench.model import Finding


def _finding_json(f: Finding) -> dict[str, Any]:
    out = dataclasses.asdict(f)
    out["severity"] = str(f.severity)
    out["taint_chain"] = list(f.taint_chain)
    return out


@click.group(invoke_without_command=True)
@click.option("--trace", "trace_id", help="Only this trace (a unique prefix is enough).")
@click.option(
    "--min-severity", type=click.Choice(Severity.names()), help="Hide findings below this severity."
)
@click.option("--rule", "rule_id", help="Only this rule id.")
@click.option("--limit", type=int, default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--otlp",
    "otlp_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write them to FILE as OTLP/JSON log records (gen_ai.guardrail.security.finding events).",
)
@click.pass_context
def findings(
    ctx: click.Context,
    trace_id: str | None,
    min_severity: str | None,
    rule_id: str | None,
    limit: int,
    as_json: bool,
    otlp_file: Path | None,
) -> None:
    """List policy findings, most severe first, with the quoted evidence and any taint chain."""
    if ctx.invoked_subcommand is not None:
        return
    from workbench.model import Severity
    from workbench.store import findings as store_findings
    from workbench.store import queries

    with open_read_only(settings_of(ctx)) as store:
        full = queries.resolve_trace_id(store, trace_id) if trace_id else None
        found = store_findings.list_findings(
            store,
            trace_id=full,
            min_severity=Severity(min_severity) if min_severity else None,
            rule_id=rule_id,
            limit=limit,
        )
    if otlp_file is not None:
        _write_otlp(otlp_file, found)
    if as_json:
        click.echo(json.dumps([_finding_json(f) for f in found], indent=2))
    else:
        click.echo(render.findings(found))


def _write_otlp(path: Path, found: list[Finding]) -> None:
    """One LogsData as a JSON line, the form the Collector's file exporter writes and `otlpjsonfile` reads."""
    import importlib.metadata
    import time

    from workbench.errors import WorkbenchError
    from workbench.policies.finding_events import logs_data

    try:
        version = importlib.metadata.version("agent-audit-workbench")
    except importlib.metadata.PackageNotFoundError:
        version = ""
    line = json.dumps(logs_data(found, time.time_ns(), version), ensure_ascii=False) + "\n"
    try:
        path.write_text(line, encoding="utf-8")
    except OSError as exc:
        raise WorkbenchError(f"{path}: cannot write the OTLP file: {exc.strerror or exc}") from exc


@findings.command("eval")
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--misses", is_flag=True, help="Also list each missed or unexpected (step, rule).")
@click.pass_context
def findings_eval(ctx: click.Context, path: Path | None, as_json: bool, misses: bool) -> None:
    """Precision and recall of each rule over a labelled set of steps
    (default: tests/data/findings_labelled)."""
    from workbench.policies.engine import engine_from_settings
    from workbench.policies.evaluation import as_json as eval_json
    from workbench.policies.evaluation import default_labelled_dir, evaluate, format_table, load_labelled

    engine = engine_from_settings(settings_of(ctx))
    result = evaluate(engine, load_labelled(path or default_labelled_dir()))
    if as_json:
        click.echo(
            json.dumps({"steps": result.steps, "traces": result.traces, "rules": eval_json(result)}, indent=2)
        )
        return
    click.echo(format_table(result))
    if misses:
        for line in result.misses:
            click.echo(render.clean(f"  {line}"))


@findings.command("rules")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def findings_rules(ctx: click.Context, as_json: bool) -> None:
    """The rules in force (after the rules file): id, severity, options, what each finds and why."""
    from workbench.policies.engine import engine_from_settings

    engine = engine_from_settings(settings_of(ctx))
    rows = [
        {
            "id": r.id,
            "severity": str(r.severity),
            "title": r.title,
            "description": r.description,
            "rationale": r.rationale,
            "options": r.opts,
        }
        for r in engine.rules
    ]
    if as_json:
        click.echo(json.dumps({"digest": engine.digest, "rules": rows}, indent=2))
        return
    for row in rows:
        click.echo(f"{row['id']} [{row['severity']}]: {row['title']}")
        click.echo(f"    finds: {row['description']}")
        click.echo(f"    why:   {row['rationale']}")
