"""`workbench verify BUNDLE`: check a bundle offline, trusting nothing in it but the key you pin.

Recomputes: the Ed25519 signature over manifest.json; the SHA-256 and size of every file, and that no
file was added; for every line of spans.jsonl the canonical protobuf and its SHA-256 against the ledger
digest in proofs.jsonl (unredacted spans), the chain link, the RFC 6962 audit path to the covered root;
the chain across a contiguous range; the consistency of the covered tree with the signed checkpoint
and of the ledger's stored checkpoints; every redaction's mask at its recorded place; with the owner's
reveal file, every salted hash and the original digest of every redacted span; every step re-derived
from its span (joined with the bundle's sealed GenAI log records where ingest joined it: verify_logs.py)
and every finding's evidence against its step (verify_steps.py). Each problem names the file, the line
(or row) and the span id.

Trust: everything above proves the bundle agrees with itself and with whoever signed it. Who signed it
is only known against a key from outside the bundle (`pubkey`: PEM, raw hex or a `sha256:` fingerprint);
without one `VerifyResult.pinned` stays False and `trusted` is False, however well the bundle agrees
with itself, because a forger re-signs with their own key and ships it in public_key.pem.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import inspect
import os
import time
from pathlib import Path
from typing import Any, cast

import orjson

import workbench.export.signing as signing
from workbench.errors import WorkbenchError
from workbench.export.verify_base import (
    _STREAMED,
    MAX_PROBLEMS,
    Problem,
    VerifyResult,
    _Bundle,
    _Damaged,
)
from workbench.export.verify_entries import verify_entries, verify_external_checkpoint
from workbench.export.verify_logs import EventsByTrace, verify_logs
from workbench.export.verify_redactions import _load_redactions
from workbench.export.verify_spans import _verify_spans, has_sealed_bytes
from workbench.export.verify_steps import StepDeriver, verify_steps


def verify_bundle(
    path: Path,
    pubkey: bytes | str | signing.Pin | None = None,
    reveal: bytes | None = None,
    jobs: int = 1,
    derive: StepDeriver | None = None,
    normalizer_version: str | None = None,
) -> VerifyResult:
    """Every check above; `pubkey` pins the signer (PEM, raw hex or `sha256:` fingerprint), `reveal` is
    the owner's reveal file. `derive` and `normalizer_version` are the collectors' normalizer (floor 3
    passes them in); without them the steps are not re-derived and `checked` has no "steps".

    `jobs` > 1 re-encodes and hashes unredacted span lines, and re-derives steps, in that many worker
    processes (the checks are independent per line); 0 picks the CPU count for bundles of 20,000 spans
    or more, else 1. `seconds` gets the time of the cryptographic checks and of the step re-derivation.
    """
    result = VerifyResult()
    try:
        pin = (
            pubkey
            if isinstance(pubkey, signing.Pin) or pubkey is None
            else signing.parse_pin(pubkey, "--pubkey")
        )
        _verify(_Bundle(path), result, pin, reveal, jobs, derive, normalizer_version)
    except _Damaged as exc:
        result.add(exc.name, f"damaged zip member (CRC or deflate error: altered bytes): {exc}")
    result.name_nodes()
    return result


def _verify(
    bundle: _Bundle,
    result: VerifyResult,
    pin: signing.Pin | None,
    reveal: bytes | None,
    jobs: int,
    derive: StepDeriver | None,
    normalizer_version: str | None,
) -> None:
    started, cpu = time.perf_counter(), time.process_time()
    for member, why in bundle.refused:
        result.add(member, f"refused: {why}")
    if bundle.refused:
        return  # which copy or which path is "the" file is ambiguous: nothing in it can be trusted
    names = set(bundle.names())
    for required in ("manifest.json", "manifest.sig", "public_key.pem"):
        if required not in names:
            result.add(required, "missing from the bundle")
    if "manifest.json" not in names:
        return
    manifest_bytes = bundle.read("manifest.json")
    try:
        manifest = orjson.loads(manifest_bytes)
    except orjson.JSONDecodeError as exc:
        result.add("manifest.json", f"not JSON: {exc}")
        return
    result.bundle_id = manifest.get("bundle_id")

    # 1. Signature, with the pinned key when there is one.
    key: Any = None
    if "public_key.pem" in names:
        try:
            key = signing.load_public_key(bundle.read("public_key.pem"), "public_key.pem")
        except WorkbenchError as exc:
            result.add("public_key.pem", str(exc))
        if key is not None and manifest.get("signing", {}).get("public_key") != signing.raw_public(key).hex():
            result.add("public_key.pem", "is not the key the manifest names (replaced key file)")
    if pin is not None:
        result.pinned = True
        if key is not None and not pin.matches(key):
            result.add(
                "public_key.pem",
                f"wrong key: the bundle carries key {signing.fingerprint(key)}, you pinned {pin.describe()}",
            )
        if pin.key is not None:
            key = pin.key
    if key is not None:
        result.key_id = signing.key_id(key)
        if "manifest.sig" in names:
            try:
                signature = base64.b64decode(bundle.read("manifest.sig").strip(), validate=True)
            except ValueError:
                signature = b""
            if not signing.signature_holds(key, signature, manifest_bytes):
                result.add(
                    "manifest.sig",
                    "signature does not match manifest.json (forged or altered manifest, or wrong key)",
                )

    # 2. Files: hashes, sizes, nothing added.
    listed = manifest.get("files", {})
    streamed: tuple[str, ...] = ()
    if all(n in names for n in _STREAMED):
        streamed = _STREAMED + (("spans.pb",) if has_sealed_bytes(bundle, manifest) else ())
    for name in sorted(names - set(listed) - {"manifest.json", "manifest.sig"}):
        result.add(name, "not listed in the manifest (inserted file)")
    for name, entry in sorted(listed.items()):
        if name not in names:
            result.add(name, "listed in the manifest but missing (deleted file)")
            continue
        if name in streamed:
            continue  # hashed while its lines are checked below: one read instead of two
        h = hashlib.sha256()
        size = 0
        for block in bundle.chunks(name):
            h.update(block)
            size += len(block)
        _compare_file(result, name, entry, {"sha256": h.hexdigest(), "bytes": size})
    result.checked["files"] = len(listed)

    if jobs <= 0:
        jobs = (os.cpu_count() or 1) if manifest.get("counts", {}).get("spans", 0) >= 20_000 else 1
    redactions = _load_redactions(bundle, names, result)
    if "spans.jsonl" in names and "proofs.jsonl" in names:
        try:
            _verify_spans(bundle, manifest, result, redactions, reveal, jobs)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            result.add("manifest.json", f"malformed ledger or redaction facts: {type(exc).__name__}: {exc}")
        for name in streamed:
            _compare_file(result, name, listed.get(name), result.streamed.setdefault(name, {}))
    originals: dict[int, str] = {}
    if reveal is not None:
        revealed = orjson.loads(reveal)
        if revealed.get("bundle_id") == manifest.get("bundle_id"):  # else the span check said so
            originals = {int(k): v for k, v in revealed["originals"].items()}
    try:
        verify_entries(bundle, manifest, names, result, redactions, originals)
        verify_external_checkpoint(manifest, result, key)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        result.add("manifest.json", f"malformed entries facts: {type(exc).__name__}: {exc}")
    result.seconds["crypto"] = time.perf_counter() - started
    result.cpu_seconds["crypto"] = time.process_time() - cpu

    events: EventsByTrace = {}
    withheld: set[str] = set()
    try:
        events, withheld = verify_logs(bundle, manifest, names, result)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        result.add("manifest.json", f"malformed log or checkpoint facts: {type(exc).__name__}: {exc}")
    if events and derive is not None:
        derive = _joining(derive, events, result)

    sealed = has_sealed_bytes(bundle, manifest) and "spans.pb" in streamed
    if (derive is not None and normalizer_version is not None) or sealed:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            verify_steps(
                bundle,
                manifest,
                names,
                result,
                redactions,
                originals,
                derive,
                normalizer_version,
                jobs,
                sealed,
                unjoinable=withheld,
            )
        except (KeyError, TypeError, ValueError, AttributeError, OSError) as exc:
            result.add("steps.parquet", f"cannot be read as steps: {type(exc).__name__}: {exc}")
        result.seconds["derive"] = time.perf_counter() - started
        result.cpu_seconds["derive"] = time.process_time() - cpu
    if derive is None or normalizer_version is None:
        result.notes.append("steps were not re-derived (no normalizer given)")


def _joining(derive: StepDeriver, events: EventsByTrace, result: VerifyResult) -> StepDeriver:
    """The deriver with the bundle's log records, so a step filled from GenAI events re-derives as ingest
    joined it. The contract: a deriver that joins takes them as `events=` (collectors.normalize's
    step_from_canonical does); one that does not is used as it is, and the joined steps will differ."""
    try:
        joins = "events" in inspect.signature(derive).parameters
    except (TypeError, ValueError):
        joins = False
    if not joins:
        result.notes.append("the bundle's log records were not joined: this deriver takes no events")
        return derive
    joined: StepDeriver = functools.partial(cast(Any, derive), events=events)  # picklable, for workers
    return joined


def _compare_file(
    result: VerifyResult, name: str, entry: dict[str, Any] | None, seen: dict[str, Any]
) -> None:
    if entry is None:
        return
    if seen.get("sha256") != entry.get("sha256") or seen.get("bytes") != entry.get("bytes"):
        result.add(
            name,
            f"SHA-256/size differ from the manifest ({seen.get('bytes')} bytes, sha256 "
            f"{str(seen.get('sha256'))[:16]}…): file altered or replaced",
        )


__all__ = ["MAX_PROBLEMS", "Problem", "VerifyResult", "verify_bundle"]
