"""The `workbench` command: a thin click layer, one module per subcommand.

The root group builds Settings from its options and the environment; `common.py` opens the store the
right way and turns a WorkbenchError into one clear line; `render.py` writes what the terminal shows.
Each command module is importable and testable alone, and imports only click and light modules at its
top: heavy imports (DuckDB, protobuf, torch) happen inside the command that needs them.
"""

from __future__ import annotations

from pathlib import Path

import click

from workbench.cli.common import WorkbenchGroup, check_data_dir, lake_options, setting_option
from workbench.cli.demo import demo
from workbench.cli.demo_cluster import demo_cluster
from workbench.cli.export import export_cmd
from workbench.cli.findings import findings
from workbench.cli.ingest import ingest
from workbench.cli.ledger import ledger
from workbench.cli.probe import probe
from workbench.cli.probes import probes_group
from workbench.cli.renormalize import renormalize
from workbench.cli.replay import replay
from workbench.cli.rescan import rescan
from workbench.cli.serve import serve
from workbench.cli.traces import traces
from workbench.cli.verify import verify_cmd
from workbench.settings import Settings


@click.group(cls=WorkbenchGroup)
@setting_option(
    "data_dir", "--data-dir", type=click.Path(path_type=Path), help="Data directory [./.workbench]."
)
@setting_option(
    "db", "--db", type=click.Path(path_type=Path), help="DuckDB file [DATA_DIR/workbench.duckdb]."
)
@lake_options
@click.version_option(package_name="agent-audit-workbench")
@click.pass_context
def cli(
    ctx: click.Context,
    data_dir: Path | None,
    db: Path | None,
    lake: str | None,
    data_path: str | None,
    node_id: str | None,
) -> None:
    """Agent Audit Workbench: capture, replay, look inside and prove what AI agents did."""
    ctx.obj = Settings.from_env(data_dir=data_dir, db=db, lake=lake, data_path=data_path, node_id=node_id)
    if ctx.invoked_subcommand is not None and not ctx.resilient_parsing:
        check_data_dir(ctx.obj)


# In the order `workbench --help` has always listed them (click sorts them anyway).
for command in (
    serve,
    demo,
    demo_cluster,
    ingest,
    traces,
    replay,
    renormalize,
    ledger,
    findings,
    rescan,
    export_cmd,
    verify_cmd,
    probe,
    probes_group,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="workbench")
