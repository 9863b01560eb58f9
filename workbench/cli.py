"""The `workbench` command. A thin click layer: it builds Settings, opens the store the right way, and
turns WorkbenchError into one clear line. Heavy imports happen inside the subcommand that needs them.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import click

from workbench.errors import DatabaseBusy, WorkbenchError
from workbench.settings import Settings, env_name


class _Group(click.Group):
    """Shows a WorkbenchError as `Error: <message>` with exit code 1, never as a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WorkbenchError as exc:
            raise click.ClickException(str(exc)) from exc


def _opt(field: str, *flags: str, **kwargs: Any) -> Any:
    """An option tied to a Settings field, readable from its WORKBENCH_* variable."""
    return click.option(*flags, field, envvar=env_name(field), show_envvar=True, default=None, **kwargs)


@click.group(cls=_Group)
@_opt("data_dir", "--data-dir", type=click.Path(path_type=Path), help="Data directory [./.workbench].")
@_opt("db", "--db", type=click.Path(path_type=Path), help="DuckDB file [DATA_DIR/workbench.duckdb].")
@click.version_option(package_name="agent-audit-workbench")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, db: Path | None) -> None:
    """Agent Audit Workbench: capture, replay, look inside and prove what AI agents did."""
    ctx.obj = Settings.from_env(data_dir=data_dir, db=db)


def _settings(ctx: click.Context) -> Settings:
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


def _open_read_only(settings: Settings) -> Any:
    from workbench.server import running_server
    from workbench.store.connection import Store

    try:
        return Store(settings.db_path, read_only=True)
    except DatabaseBusy as exc:
        server = running_server(settings)
        where = f" (workbench serve, PID {server.pid}, {server.http_url})" if server else ""
        raise DatabaseBusy(f"{exc}{where}") from exc


def _open_for_writing(settings: Settings, what: str) -> Any:
    from workbench.server import running_server
    from workbench.store.connection import Store

    server = running_server(settings)
    if server is not None:
        raise DatabaseBusy(
            f"workbench serve (PID {server.pid}) holds {settings.db_path}; stop it before `{what}`"
        )
    return Store(settings.db_path)


@cli.command()
@_opt("host", "--host", help="Address to bind [127.0.0.1].")
@_opt("http_port", "--http-port", type=int, help="OTLP/HTTP port [4318].")
@_opt("grpc_port", "--grpc-port", type=int, help="OTLP/gRPC port [4317].")
@_opt("ui_port", "--ui-port", type=int, help="Workbench UI port [8501]; 0 picks a free one.")
@_opt("auth_token", "--auth-token", help="Require this bearer token on every request.")
@click.pass_context
def serve(ctx: click.Context, **options: Any) -> None:
    """Run the collectors (OTLP/HTTP and OTLP/gRPC) as the one process that owns the database."""
    from workbench.server import running_server
    from workbench.server import serve as run_server

    settings = _settings(ctx).replace(**options)
    other = running_server(settings)
    if other is not None:
        raise DatabaseBusy(f"workbench serve is already running for this data directory (PID {other.pid})")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        run_server(settings)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a person stops the server: the shutdown already ran, exit 0


@cli.command()
@click.option("--data-dir", "demo_dir", type=click.Path(path_type=Path), help="Wiped first [.workbench/demo]")
@click.option("--live", is_flag=True, help="Also run the scripted agents now, over OTLP/HTTP to the server.")
@click.option("--pace", type=float, default=0.1, show_default=True, help="Live: real s per scripted s.")
@_opt("http_port", "--http-port", type=int, help="OTLP/HTTP port [4318].")
@_opt("grpc_port", "--grpc-port", type=int, help="OTLP/gRPC port [4317].")
@click.pass_context
def demo(ctx: click.Context, demo_dir: Path | None, live: bool, pace: float, **options: Any) -> None:
    """Start over in a demo data directory (wiped first), load the sample incidents, and serve;
    `--live` also runs the scripted agents against the server so their traces arrive while it runs."""
    from workbench.demo import demo_settings, run_demo

    given = demo_dir or (ctx.parent.params.get("data_dir") if ctx.parent else None)
    run_demo(demo_settings(_settings(ctx).replace(**options), given), live=live, pace=pace, echo=click.echo)


@cli.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.pass_context
def ingest(ctx: click.Context, files: tuple[Path, ...]) -> None:
    """Load OTLP trace files (.json, .jsonl, protobuf .pb; also .gz). While `workbench serve` runs, the
    spans are sent to it over OTLP/HTTP; otherwise they are written to the database directly."""
    from workbench.ingest import ingest_files

    settings = _settings(ctx)
    totals = ingest_files(settings, files)
    click.echo(
        f"ingested {totals.accepted} spans from {len(files)} file(s)"
        + (f", rejected {totals.rejected}" if totals.rejected else "")
        + (f" via {totals.via}" if totals.via else "")
    )
    if totals.findings is not None:
        click.echo(f"findings: {totals.findings} (workbench findings)")
    if totals.findings_error:
        click.echo(f"findings not computed: {totals.findings_error}", err=True)
    for error in totals.errors[:20]:
        click.echo(f"  rejected: {error}", err=True)
    if totals.rejected and not totals.accepted:
        sys.exit(1)


@cli.command()
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def traces(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List traces, newest first, with step, error, tool and token counts."""
    from workbench.api_client import remote_traces
    from workbench.store import queries
    from workbench.terminal import traces_table

    found = remote_traces(_settings(ctx), limit)  # through the server's read API while one runs
    if found is None:
        with _open_read_only(_settings(ctx)) as store:
            found = queries.list_traces(store, limit=limit)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(t) for t in found], indent=2))
    else:
        click.echo(traces_table(found))


@cli.command()
@click.argument("trace_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: every step field.")
@click.pass_context
def replay(ctx: click.Context, trace_id: str, as_json: bool) -> None:
    """Replay one trace step by step: kind, actor, tool and arguments, reasoning, tokens, errors.
    TRACE_ID may be a unique prefix."""
    from workbench.api_client import remote_trace_steps
    from workbench.store import queries
    from workbench.terminal import replay as render

    remote = remote_trace_steps(_settings(ctx), trace_id)  # through the server's read API while one runs
    if remote is not None:
        full, steps = remote
    else:
        with _open_read_only(_settings(ctx)) as store:
            full = queries.resolve_trace_id(store, trace_id)
            steps = queries.trace_steps(store, full)
    if as_json:
        rows = [{"seq": s.seq, **dataclasses.asdict(s.step), "kind": str(s.step.kind)} for s in steps]
        click.echo(json.dumps({"trace_id": full, "steps": rows}, indent=2))
    else:
        click.echo(render(full, steps))


@cli.command()
@click.pass_context
def renormalize(ctx: click.Context) -> None:
    """Re-derive every step from the stored raw spans (after a fix to a convention mapping)."""
    from tqdm import tqdm

    from collectors.decode import record_from_canonical
    from collectors.normalize import NORMALIZER_VERSION
    from collectors.pipeline import default_normalizer, safe_normalize
    from workbench.store import queries

    settings = _settings(ctx)
    normalize = default_normalizer()
    with _open_for_writing(settings, "renormalize") as store:
        counted = queries.counts(store)
        total = counted["spans"] - counted["versions"]
        done = 0
        with tqdm(total=total, unit="span", disable=None, file=sys.stderr) as bar:
            for chunk in queries.iter_canonical(store):
                seqs = [seq for seq, _ in chunk]
                steps = [
                    safe_normalize(normalize, record_from_canonical(raw, settings.max_attribute_length))
                    for _, raw in chunk
                ]
                queries.replace_steps(store, seqs, steps, NORMALIZER_VERSION)
                done += len(chunk)
                bar.update(len(chunk))
    click.echo(f"renormalized {done} steps")


@cli.group()
def ledger() -> None:
    """The tamper-evident hash chain over every ingested span."""


@ledger.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--against",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A signed tree head (or log of them) from `ledger checkpoint`: prove today's ledger extends it.",
)
@click.pass_context
def ledger_verify(ctx: click.Context, as_json: bool, against: Path | None) -> None:
    """Recompute digests, chain and Merkle checkpoints, re-derive every step, check every sealed finding,
    annotation and probe result; name the first bad one. Exit 0 only when everything holds."""
    from collectors.integrity import step_deriver, stored_columns_check
    from collectors.normalize import NORMALIZER_VERSION
    from workbench.export.signing import load_or_create_key
    from workbench.store import treehead
    from workbench.store.verify import verify_ledger

    settings = _settings(ctx)
    with _open_read_only(settings) as store:
        report = verify_ledger(
            store, stored_columns_check(), derive=step_deriver(), normalizer_version=NORMALIZER_VERSION
        )
        anchored: list[str] = []
        if against is not None:
            public = load_or_create_key(settings.data_dir).public_key()
            heads = treehead.parse_log(against.read_text(encoding="utf-8"), public, str(against))
            anchored = treehead.check_extends(store, heads)
    ok = report.ok and not anchored
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": ok,
                    "checked": report.checked,
                    "checkpoints": report.checkpoints,
                    "first_bad_seq": report.first_bad_seq,
                    "problems": [{"seq": s, "problem": p} for s, p in report.problems],
                    "step_problems": [{"seq": s, "problem": p} for s, p in report.step_problems],
                    "entries": report.entries,
                    "entry_problems": [{"entry": s, "problem": p} for s, p in report.entry_problems],
                    "against": [{"problem": p} for p in anchored],
                    "chain_head": report.chain_head.hex(),
                    "entries_head": report.entries_head.hex(),
                },
                indent=2,
            )
        )
    elif ok:
        click.echo(
            f"ledger OK: {report.checked} spans, {report.checkpoints} checkpoints, {report.entries} entries"
            f"{', extends ' + str(against) if against else ''}, chain head {report.chain_head.hex()}"
        )
    else:
        first = report.first_bad_seq
        click.echo("ledger BROKEN" + (f": first bad sequence number {first}" if first else ""), err=True)
        for _, problem in report.problems + report.step_problems + report.entry_problems:
            click.echo(f"  {problem}", err=True)
        for problem in anchored:
            click.echo(f"  against {against}: {problem}", err=True)
    sys.exit(0 if ok else 1)


@ledger.command("checkpoint")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append the signed tree head to this file (keep it outside the data directory) [stdout].",
)
@click.pass_context
def ledger_checkpoint(ctx: click.Context, out: Path | None) -> None:
    """Write a signed tree head (size, Merkle roots, time, Ed25519 signature) of the ledger as it is now."""
    from workbench.export.signing import load_or_create_key
    from workbench.store import treehead

    settings = _settings(ctx)
    with _open_read_only(settings) as store:
        note = treehead.sign(treehead.current(store), load_or_create_key(settings.data_dir))
    if out is None:
        click.echo(note, nl=False)
    else:
        with out.open("a", encoding="utf-8") as f:
            f.write(note + "\n")
        click.echo(f"signed tree head appended to {out}")


from workbench import commands_findings  # noqa: E402  (findings, findings eval, rescan)

commands_findings.register(cli)

from workbench import commands_export  # noqa: E402  (export, verify)

commands_export.register(cli)

from workbench import commands_probes  # noqa: E402  (probe, probes train/report/list)

commands_probes.register(cli)


def main() -> None:
    cli(prog_name="workbench")


if __name__ == "__main__":
    main()
