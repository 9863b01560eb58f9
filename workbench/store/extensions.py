"""Loading DuckDB extensions offline, from the wheels on the package index.

DuckDB's `INSTALL`/autoload fetches extensions from extensions.duckdb.org, which our machines (and many
of our users' audit rooms) cannot reach. The `duckdb-extension-*` wheels ship the binaries instead, each
as `<package>/extensions/v<version>/<name>.duckdb_extension`. `LOAD '<path>'` is not enough: the
postgres extension's entry point is named after its internal name, `postgres_scanner`, so the file
must carry that name. We therefore build an extension directory of symlinks in DuckDB's own layout
(`v<version>/<platform>/<internal name>.duckdb_extension`) and point connections at it, with
autoinstall off so a missing extension is an error that names the package, never a download attempt.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path

import duckdb

from workbench.errors import WorkbenchError

# our name -> (wheel's Python package, DuckDB's internal extension name)
_PACKAGES = {
    "ducklake": ("duckdb_extension_ducklake", "ducklake"),
    "postgres": ("duckdb_extension_postgres", "postgres_scanner"),
    "httpfs": ("duckdb_extension_httpfs", "httpfs"),
    "fts": ("duckdb_extension_fts", "fts"),
}


def _binary(name: str) -> Path:
    package, _internal = _PACKAGES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WorkbenchError(
            f"DuckDB extension {name!r} is not installed: pip install {package.replace('_', '-')}"
            f"=={duckdb.__version__}"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "extensions" / f"v{duckdb.__version__}"
    found = root / f"{name}.duckdb_extension"
    if not found.is_file():
        have = sorted(p.name for p in root.parent.glob("*")) if root.parent.is_dir() else []
        raise WorkbenchError(
            f"{package} has no build for DuckDB {duckdb.__version__} (it ships {have or 'nothing'}); "
            "install the extension wheel of the same version as duckdb"
        )
    return found


def _platform() -> str:
    con = duckdb.connect()
    try:
        row = con.execute("PRAGMA platform").fetchone()
    finally:
        con.close()
    return str(row[0]) if row else "linux_amd64"


def extension_directory() -> Path:
    """A directory in DuckDB's layout whose entries link to the wheels' binaries; built once per
    (DuckDB version, install location), reused after."""
    sources = {internal: _binary(name) for name, (_pkg, internal) in _PACKAGES.items()}
    key = hashlib.sha256(repr(sorted((k, str(v)) for k, v in sources.items())).encode()).hexdigest()[:16]
    base = Path(tempfile.gettempdir()) / f"workbench-duckdb-ext-{os.getuid()}-{key}"
    target = base / f"v{duckdb.__version__}" / _platform()
    target.mkdir(parents=True, exist_ok=True)
    for internal, source in sources.items():
        link = target / f"{internal}.duckdb_extension"
        if link.is_symlink() and link.resolve() == source.resolve():
            continue
        tmp = target / f".{internal}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(source)
        tmp.replace(link)  # atomic, so concurrent processes never see a half-made link
    return base


def config() -> dict[str, str | bool | int | float | list[str]]:
    """Connection options that make `LOAD <name>` use the wheels and never download."""
    return {
        "extension_directory": str(extension_directory()),
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": True,
    }


def load(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """Load these extensions into a connection opened with `config()`; a clear error when one is absent."""
    for name in names:
        if name not in _PACKAGES:
            raise ValueError(f"unknown extension {name!r}; known: {sorted(_PACKAGES)}")
        try:
            con.execute(f"LOAD {name}")
        except duckdb.Error as exc:
            raise WorkbenchError(f"cannot load DuckDB extension {name!r}: {exc}") from exc
