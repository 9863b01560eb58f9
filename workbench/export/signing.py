"""The exporter's Ed25519 key: created on first use in the data directory, private file mode 0600.

Why Ed25519 from `cryptography`: small keys and signatures, deterministic signing (no nonce to get
wrong), and a kept library instead of our own crypto. The public key travels in every bundle as
`public_key.pem`; an auditor pins it (`workbench verify --pubkey`) so that a bundle re-signed with some
other key does not pass. A key carried inside the bundle proves nothing by itself (a forger ships their
own), so the pin must come from outside: the public half is kept beside the private one as
`signing.pub.pem` for the owner to hand over, and its `sha256:` fingerprint (`fingerprint`) is what the
CLI prints, the UI shows and `--pubkey` accepts, so a person can compare one short string.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from workbench.errors import WorkbenchError

KEY_FILE = "export_ed25519.pem"
PUBLIC_KEY_FILE = "signing.pub.pem"
FINGERPRINT_PREFIX = "sha256:"


def key_path(data_dir: Path) -> Path:
    return data_dir / "keys" / KEY_FILE


def public_key_path(data_dir: Path) -> Path:
    """Where the public half lives, named so nobody mistakes it for the secret (safe to hand out)."""
    return data_dir / "keys" / PUBLIC_KEY_FILE


def load_or_create_key(data_dir: Path) -> Ed25519PrivateKey:
    """The data directory's signing key; generated (and written with mode 0600) when there is none."""
    path = key_path(data_dir)
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise WorkbenchError(f"{path}: not a readable PEM private key ({exc})") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise WorkbenchError(f"{path}: the export key must be Ed25519")
        _write_public(data_dir, key.public_key())  # keys made before the public file existed get one now
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # O_EXCL: two exports starting at once must not both write a key and sign with different ones.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_or_create_key(data_dir)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    _write_public(data_dir, key.public_key())
    return key


def _write_public(data_dir: Path, pub: Ed25519PublicKey) -> None:
    """(Re)write signing.pub.pem when it is missing or is not this key's public half (mode 0644: it is
    meant to be shared). Written to a temporary name and renamed, so a reader never sees half a key."""
    path = public_key_path(data_dir)
    pem = public_pem(pub)
    try:
        if path.read_bytes() == pem:
            return
    except OSError:
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(pem)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def load_or_create_public(data_dir: Path) -> Ed25519PublicKey:
    """The data directory's public key (creating the key pair, and the public file, if needed)."""
    return load_or_create_key(data_dir).public_key()


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key, hex (the manifest's `signing.key_id`)."""
    return hashlib.sha256(raw_public(key)).hexdigest()


def fingerprint(key: Ed25519PublicKey) -> str:
    """`sha256:<hex>`: the one string the CLI prints, the UI shows and `--pubkey` accepts as a pin."""
    return FINGERPRINT_PREFIX + key_id(key)


def is_fingerprint(text: str) -> bool:
    """Whether `text` is a `sha256:` fingerprint (64 hex digits after the prefix)."""
    return bool(re.fullmatch(r"sha256:[0-9a-fA-F]{64}", text.strip()))


@dataclass(frozen=True)
class Pin:
    """What the verifier trusts: a whole public key, or only its fingerprint (then the bundle's own key
    must have exactly that fingerprint, and is used)."""

    key: Ed25519PublicKey | None = None
    fingerprint: str | None = None

    def matches(self, key: Ed25519PublicKey) -> bool:
        if self.key is not None:
            return raw_public(self.key) == raw_public(key)
        return self.fingerprint is not None and self.fingerprint.lower() == fingerprint(key)

    def describe(self) -> str:
        return fingerprint(self.key) if self.key is not None else str(self.fingerprint)


def parse_pin(value: bytes | str, where: str) -> Pin:
    """A pin from a fingerprint (`sha256:...`) or key material (PEM, or 64 hex characters of the raw key)."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if is_fingerprint(text):
        return Pin(fingerprint=text.strip().lower())
    data = value if isinstance(value, bytes) else value.encode("utf-8")
    return Pin(key=load_public_key(data, where))


def load_public_key(data: bytes, where: str) -> Ed25519PublicKey:
    """A public key from PEM, or 64 hex characters of the raw key."""
    text = data.strip()
    try:
        if text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(text)
        else:
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(text.decode("ascii")))
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise WorkbenchError(f"{where}: not an Ed25519 public key (PEM or 64 hex characters): {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise WorkbenchError(f"{where}: not an Ed25519 public key")
    return key


def signature_holds(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
