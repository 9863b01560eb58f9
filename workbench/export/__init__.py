"""Compliance export: a signed, redacted, independently verifiable audit bundle, and its verifier.

Design, in the order an auditor checks it (`workbench verify BUNDLE --pubkey KEY`):

1. `manifest.sig` is an Ed25519 signature over the bytes of `manifest.json`; the manifest lists the
   SHA-256 and size of every other file, so one signature covers the bundle. The key lives in the data
   directory (created on first use, mode 0600); auditors pin its public half.
2. `spans.jsonl` holds each span as OTLP/JSON. Re-encoded as the deterministic protobuf the collectors
   stored (`otlp_json.canonical_from_json`), it hashes to the ledger digest in the same line of
   `proofs.jsonl`, whose chain link and RFC 6962 audit path are recomputed; the covered tree is shown
   to be a prefix of a signed checkpoint of the whole ledger by an RFC 6962 consistency proof.
3. Redaction (on by default: secrets and personal data, via `workbench.sensitive`). The ledger digest
   is over the ORIGINAL bytes, so a masked span cannot hash to it, and no hash trick can change that
   without weakening the ledger. So a redacted span is proven in two parts: its original digest is
   proven exactly like any other (chain, inclusion, consistency: the record existed, unaltered, in that
   place); and its masks are accounted for: every `[REDACTED:kind#id]` has a record in
   `redactions.jsonl` (rule, span id, JSON path, character ranges before and after, and
   HMAC-SHA256(salt, original)). The per-bundle salt and the originals go to the exporter's reveal file
   (`DATA_DIR/exports/reveal/<bundle_id>.json`, mode 0600), never into the bundle: short values (a phone
   number, a card) would fall to brute force if the salt travelled with the hash. With the reveal file
   (`workbench verify --reveal`) the verifier puts the originals back and checks that the span then
   hashes to exactly its ledger digest, so the redacted line differs from what was ingested only where
   the record says; the owner may also open single values (salt + one original) to an auditor.
4. A database that fails its own ledger check is refused at export time (`LedgerBroken`), so a bundle
   never certifies rows altered after ingest.

Floor 2: imports floor 1 (`workbench.store`, `workbench.model`), `workbench.sensitive`, third party.

Importing this package imports none of its modules (PEP 562): a verify worker process needs the line
check, not the bundle writer, redaction or the report, and the CLI starts fast. The names below load
their module on first use; inside the package, modules import their siblings by module path, never
through this file. Callers that want precise types import from the module itself
(`workbench.export.bundle`, `workbench.export.verify`).
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module that defines it
_LAZY = {
    "ExportOptions": "workbench.export.bundle_options",
    "ExportResult": "workbench.export.bundle_options",
    "LedgerBroken": "workbench.export.bundle_options",
    "export_bundle": "workbench.export.bundle",
    "Problem": "workbench.export.verify_base",
    "VerifyResult": "workbench.export.verify_base",
    "verify_bundle": "workbench.export.verify",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    """Load the module that defines `name` on first use. Submodules (`workbench.export.signing`) are
    not listed: for an unknown name this raises AttributeError and `from workbench.export import
    signing` then imports the submodule the ordinary way."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
