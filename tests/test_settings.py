"""Settings from `WORKBENCH_*` variables, typed by the dataclass's annotations."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from workbench import settings as settings_module
from workbench.settings import Settings, env_name


def test_every_field_is_read_from_its_variable_with_its_type() -> None:
    env = {
        "WORKBENCH_DATA_DIR": "/tmp/wb",
        "WORKBENCH_DB": "/tmp/wb/x.duckdb",
        "WORKBENCH_HTTP_PORT": "4_400",
        "WORKBENCH_AUTH_TOKEN": "s3cret",
        "WORKBENCH_RULES_FILE": "",  # empty means unset
    }
    s = Settings.from_env(env)
    assert s.data_dir == Path("/tmp/wb") and s.db == Path("/tmp/wb/x.duckdb")
    assert s.http_port == 4400 and isinstance(s.http_port, int)
    assert s.auth_token == "s3cret" and s.rules_file is None
    assert Settings.from_env(env, http_port=9).http_port == 9  # CLI flags win


def test_a_bad_value_names_its_variable() -> None:
    with pytest.raises(ValueError, match=r"^WORKBENCH_GRPC_PORT='many': expected an integer$"):
        Settings.from_env({"WORKBENCH_GRPC_PORT": "many"})


def test_every_field_type_can_be_read() -> None:
    """A new setting of a type the reader does not know fails here, not in a user's shell."""
    for f in dataclasses.fields(Settings):
        hint = settings_module._field_types()[f.name]
        default = f.default
        if default is None or default is dataclasses.MISSING:
            continue
        raw = str(default)
        assert settings_module._coerce(f.name, hint, raw) == default, env_name(f.name)


@pytest.mark.parametrize(
    ("hint", "raw", "value"),
    [
        (bool, "yes", True),
        (bool, "0", False),
        (float, "2.5", 2.5),
        (int | None, "7", 7),
        (tuple[str, ...], "a, b,,c", ("a", "b", "c")),
        (list[int], "1,2", [1, 2]),
    ],
)
def test_other_types_a_setting_may_take(hint: object, raw: str, value: object) -> None:
    assert settings_module._coerce("x", hint, raw) == value


def test_bad_boolean_and_number_name_the_variable() -> None:
    with pytest.raises(ValueError, match="WORKBENCH_FLAG='maybe': expected a boolean"):
        settings_module._coerce("flag", bool, "maybe")
    with pytest.raises(ValueError, match="WORKBENCH_RATIO='x': expected a number"):
        settings_module._coerce("ratio", float, "x")


@pytest.mark.parametrize(
    ("configured", "workers", "detected", "threads"),
    [
        (0, 1, 2, 1),  # two cores, one decode worker: DuckDB keeps the other
        (0, 1, 8, 7),
        (0, 0, 4, 4),  # no workers: every core
        (0, 4, 2, 1),  # never fewer than one
        (3, 1, 2, 3),  # an explicit value wins
    ],
)
def test_duckdb_threads_leave_the_decode_workers_their_cores(
    configured: int, workers: int, detected: int, threads: int
) -> None:
    from workbench.server.app import duckdb_threads

    settings = Settings(duckdb_threads=configured, decode_workers=workers)
    assert duckdb_threads(settings, detected) == threads
