"""The probe job process: `python -m probes.job_process`, the only place a served workbench runs torch.

Why a separate process: loading or converting the model and every forward pass hold the GIL for long
stretches, and inside `workbench serve` that starved the Streamlit UI and the OTLP receivers, and made
SIGTERM wait on a model load. A child process shares no GIL, can be killed at any instant, and a crash
or an out-of-memory kill there leaves the server up.

Why a plain subprocess speaking JSON lines rather than `multiprocessing` ("spawn"): spawn re-imports
the parent's `__main__` (the CLI, or pytest) and pickles callables across; a subprocess starts from a
clean interpreter with nothing inherited but the environment, its protocol is text a person can read
in a log, and the parent owns exactly one PID to terminate or kill. The child never opens the DuckDB
file (DuckDB admits one writing process, the server): the parent sends it the step's text and writes
what comes back.

Protocol, one JSON object per line. The parent writes to stdin:

    {"run_id": int, "input": {"context", "reasoning", "action"}, "analyses": [...], "params": {...}}

and the child answers on stdout, for each job, any number of progress lines then one final line:

    {"type": "progress", "run_id": int, "fraction": float, "message": str}
    {"type": "provenance", "run_id": int, "provenance": {...}}        (after the model loaded)
    {"type": "done", "run_id": int, "results": [{"analysis", "summary", "data"}...]}
    {"type": "failed", "run_id": int, "error": str}

The model loads lazily with the first job and stays warm for the next ones. The child exits when its
stdin closes (the parent went away). Anything libraries print goes to stderr (the server's log), never
into the protocol.

`WORKBENCH_PROBE_MODEL=factory:MODULE:FUNCTION` names a function returning a `LoadedModel` instead of
a model to load: how tests give the child a tiny `boot_native` model without a download.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import IO, Any

from workbench.errors import WorkbenchError

log = logging.getLogger("probes.job_process")

FACTORY_PREFIX = "factory:"
PARENT_ENV = "PROBES_JOB_PARENT_PID"  # set by the worker (internal, not a setting)


def _load(settings: Any) -> Any:
    """The model the settings name: a factory for tests, else `probes.models.load_model`."""
    name = str(settings.probe_model)
    if name.startswith(FACTORY_PREFIX):
        module, _, func = name[len(FACTORY_PREFIX) :].partition(":")
        try:
            factory = getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError) as exc:
            raise WorkbenchError(f"probe model factory {name!r} cannot be imported: {exc}") from exc
        if settings.probe_threads > 0:
            import torch

            torch.set_num_threads(settings.probe_threads)
        return factory()
    from probes.models import load_model

    return load_model(name, Path(settings.data_dir), settings.probe_threads)


def _send(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _job(out: IO[str], job: dict[str, Any], settings: Any, state: dict[str, Any]) -> None:
    from probes.runner import run_analyses
    from probes.text import StepInput

    run_id = int(job["run_id"])
    try:
        if "model" not in state:
            _send(out, {"type": "progress", "run_id": run_id, "fraction": 0.0, "message": "loading model"})
            state["model"] = _load(settings)
        model = state["model"]
        _send(out, {"type": "provenance", "run_id": run_id, "provenance": model.provenance.as_dict()})
        results = run_analyses(
            model,
            StepInput(**job["input"]),
            job["analyses"],
            job.get("params") or {},
            progress=lambda f, msg: _send(
                out, {"type": "progress", "run_id": run_id, "fraction": f, "message": msg}
            ),
            run_id=run_id,
        )
        payload = [{"analysis": r.analysis, "summary": r.summary, "data": r.data} for r in results]
        _send(out, {"type": "done", "run_id": run_id, "results": payload})
    except WorkbenchError as exc:
        _send(out, {"type": "failed", "run_id": run_id, "error": str(exc)})
    except Exception as exc:  # one bad job must not end the warm process
        traceback.print_exc(file=sys.stderr)
        _send(out, {"type": "failed", "run_id": run_id, "error": f"{type(exc).__name__}: {exc}"})


def _die_with_parent() -> None:
    """Linux: be killed when the server dies, even by SIGKILL, instead of finishing a model load (or a
    GGUF conversion into the shared cache) nobody waits for. Reading stdin to its end covers the rest.

    PR_SET_PDEATHSIG fires when the thread that started us exits: that is the probe worker's thread,
    whose end means the same thing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    parent = os.environ.get(PARENT_ENV)
    if parent and os.getppid() != int(parent):  # the parent died before prctl took effect
        os._exit(1)


def main() -> int:
    """Serve jobs from stdin until it closes."""
    from workbench.settings import Settings

    _die_with_parent()

    # The protocol keeps the real stdout; everything else that writes to fd 1 lands in stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    settings = Settings.from_env()  # the parent passes its data dir, model and threads in the environment
    state: dict[str, Any] = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            job = json.loads(line)
        except json.JSONDecodeError as exc:
            log.error("probe job process: unreadable job line (%s): %.200s", exc, line)
            continue
        _job(out, job, settings, state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
