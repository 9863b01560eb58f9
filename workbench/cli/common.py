"""What every command module shares: the settings from the click context, options tied to settings,
opening the store the right way while a server may hold it, and the group that turns a WorkbenchError
into one clear line.

Command modules import this at their top; nothing here imports a command, so there is no cycle to dodge.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from workbench.cli.render import clean
from workbench.errors import DatabaseBusy, PathProblem, WorkbenchError, path_problem
from workbench.settings import Settings, env_name

if TYPE_CHECKING:
    from workbench.store.connection import Store


def _refused(message: str, exit_code: int) -> click.ClickException:
    """A ClickException with the exit code of the error it shows (README: exit codes)."""
    exc = click.ClickException(message)
    exc.exit_code = exit_code  # type: ignore[misc]  # click reads it per instance; the class sets 1
    return exc


class WorkbenchGroup(click.Group):
    """Shows a WorkbenchError as `Error: <message>` with exit code 1 (2 for a path that cannot be used),
    never as a traceback. Messages may quote trace text (a trace id prefix, a server's answer), so their
    control characters are escaped. An OSError nobody turned into a WorkbenchError still names its path:
    a wrong path is the user's to fix, and a traceback tells them nothing."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WorkbenchError as exc:
            raise _refused(clean(str(exc)), getattr(exc, "exit_code", 1)) from exc
        except OSError as exc:
            if exc.filename is None:
                raise
            problem = path_problem("cannot use", exc.filename, exc)
            raise _refused(clean(str(problem)), problem.exit_code) from exc


def setting_option(field: str, *flags: str, **kwargs: Any) -> Any:
    """An option tied to a Settings field, readable from its WORKBENCH_* variable."""
    return click.option(*flags, field, envvar=env_name(field), show_envvar=True, default=None, **kwargs)


def lake_options(command: Any) -> Any:
    """--lake, --data-path and --node-id: on the root group (every command reads the lake) and on
    `serve` (where they are usually given)."""
    command = setting_option("node_id", "--node-id", help="Lake mode: this node's name [hostname-<hash>].")(
        command
    )
    command = setting_option(
        "data_path", "--data-path", help="Lake mode: the shared data path (directory or s3://...)."
    )(command)
    return setting_option("lake", "--lake", help="Lake mode: libpq connection string of the catalog.")(
        command
    )


def settings(ctx: click.Context) -> Settings:
    """The Settings the root group built from its options and the environment."""
    found = ctx.find_root().obj
    assert isinstance(found, Settings)
    return found


def open_read_only(settings: Settings) -> Store:
    """The database for reading; when a server holds it, the refusal names the server."""
    from workbench.server.discovery import running_server
    from workbench.store.connection import Store

    if settings.lake:  # the lake has no single-writer lock: any node or command reads all of it
        from workbench.store.lake import open_lake

        return open_lake(settings, read_only=True)
    try:
        return Store(settings.db_path, read_only=True)
    except DatabaseBusy as exc:
        server = running_server(settings)
        where = (
            f" (workbench serve, PID {server.pid}, {server.http_url})"
            if server and server.holds(settings)
            else ""
        )
        raise DatabaseBusy(f"{exc}{where}") from exc


def open_for_writing(settings: Settings, what: str) -> Store:
    """The database for writing; refused with the server's PID while `workbench serve` holds it. A server
    on this data directory that holds another file is no obstacle: DuckDB's lock guards the named one."""
    from workbench.server.discovery import running_server
    from workbench.store.connection import Store

    if settings.lake:  # nodes write the lake concurrently; this command joins as a node of its own
        from workbench.store.lake import open_lake

        return open_lake(settings)
    server = running_server(settings)
    if server is not None and server.holds(settings):
        raise DatabaseBusy(
            f"workbench serve (PID {server.pid}) holds {settings.db_path}; stop it before `{what}`"
        )
    return Store(settings.db_path)


def check_data_dir(settings: Settings) -> None:
    """`--data-dir` must be a directory (or not exist yet: it is created on first use)."""
    where = settings.data_dir
    if where.exists() and not where.is_dir():
        raise PathProblem(
            f"--data-dir {where}: is a file, not a directory (give a directory; it is created if missing)"
        )


def check_output(path: Path, flag: str) -> None:
    """An output path that would overwrite a file, or whose parent is a file, is refused up front, before
    any work, so nothing is half-written: `flag` names the option in the message."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise PathProblem(f"{flag} {path}: {parent} is a file, not a directory (choose another path)")
            break
    if path.exists() and not path.is_dir():
        raise PathProblem(
            f"{flag} {path}: already exists and is not a directory"
            " (choose a new path; nothing was overwritten)"
        )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64 = range(-(2**63), 2**63)


class Instant(click.ParamType):
    """A time option as integer nanoseconds since the epoch, the unit every stored time has.

    Accepts ISO 8601 as Python reads it (`2026-12-03T10:00:00Z`, `2026-12-03 10:00+01:00`, `2026-12-03`;
    UTC when it names no offset) or integer nanoseconds. Converted exactly, without a float on the way, so
    a boundary at a span's own start time keeps that span. Relative forms (`2h`) are not read: no
    parser for them is a dependency, and a hand-written one would be one more grammar to get wrong. A
    bad value is click's usage error naming the option (exit 2), before any work.
    """

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if text.isascii() and text.isdigit():
            ns = int(text)
        else:
            try:
                when = datetime.fromisoformat(text)
            except ValueError:
                self.fail(
                    f"{value!r} is not a time: give ISO 8601 (2026-12-03T10:00:00Z, 2026-12-03; UTC when no "
                    "offset is given) or integer nanoseconds since the epoch",
                    param,
                    ctx,
                )
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            delta = when - _EPOCH
            ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
        if ns not in _INT64:
            self.fail(
                f"{value!r} is out of range: stored times are 64-bit nanoseconds (1677 to 2262)", param, ctx
            )
        return ns


class Usd(click.ParamType):
    """An amount of US dollars: a finite number, zero or more (click's FloatRange lets NaN through, and
    `cost >= NaN` would quietly match nothing)."""

    name = "usd"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            amount = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of US dollars", param, ctx)
        if not math.isfinite(amount) or amount < 0:
            self.fail(f"{value!r} must be a finite amount of zero or more", param, ctx)
        return amount


def utf8_text(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A click callback refusing text that is not valid UTF-8 (a terminal's stray byte arrives as a lone
    surrogate), which neither a query string nor DuckDB can carry: one clear line instead of a
    traceback from deep inside the request."""
    for text in value if isinstance(value, tuple) else (value,):
        if isinstance(text, str):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise click.BadParameter(f"{text!r} is not valid UTF-8", ctx, param) from None
    return value
