"""The exporter's Ed25519 key: created on first use in the data directory, private file mode 0600.

Why Ed25519 from `cryptography`: small keys and signatures, deterministic signing (no nonce to get
wrong), and a kept library instead of our own crypto. The public key travels in every bundle as
`public_key.pem`; an auditor pins it (`workbench verify --pubkey`) so that a bundle re-signed with some
other key does not pass.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from workbench.errors import WorkbenchError

KEY_FILE = "export_ed25519.pem"


def key_path(data_dir: Path) -> Path:
    return data_dir / "keys" / KEY_FILE


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
    return key


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key, hex: what a person compares when pinning."""
    return hashlib.sha256(raw_public(key)).hexdigest()


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
