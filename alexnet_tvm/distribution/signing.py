"""Ed25519 signatures over a pack's digest list (``SHA256SUMS``), and the keys that make them.

SHA256SUMS proves the files are the ones listed; whoever can write the index or
the registry can write a new SHA256SUMS too. A signature over SHA256SUMS by a
key the puller trusts closes that: ``pull --trust KEY.pub`` refuses an unsigned
pack or one signed by another key while reading the archive's first members,
before any file is written.

Key files: the private key is PKCS#8 PEM (mode 0600); a public key, and a
trusted-keys file, hold lines ``alexnet-tvm-ed25519 <base64 of the 32 raw bytes>
[comment]`` (``#`` starts a comment). The signature member ``SHA256SUMS.sig`` is
JSON: ``{"algorithm": "ed25519", "public_key": <base64>, "signature": <base64>}``.
The ``cryptography`` package is imported only here, and only when a key or
signature is actually used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from alexnet_tvm.errors import RegistryError
from alexnet_tvm.fsutil import refuse_existing, write_text

SIG = "SHA256SUMS.sig"
KEY_TAG = "alexnet-tvm-ed25519"
ALGORITHM = "ed25519"
MAX_SIG_BYTES = 4096


def _crypto():
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise RegistryError("signing needs the 'cryptography' package (pip install cryptography)") from None
    return ed25519


def key_id(public_raw: bytes) -> str:
    """The short name of a public key that the index records as a pack's signer."""
    return f"{ALGORITHM}:{hashlib.sha256(public_raw).hexdigest()[:16]}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: object, what: str, size: int | None = None) -> bytes:
    try:
        raw = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raise RegistryError(f"{what}: not base64") from None
    if size is not None and len(raw) != size:
        raise RegistryError(f"{what}: {len(raw)} bytes, an Ed25519 key has {size}")
    return raw


def keygen(out: Path, force: bool = False) -> tuple[Path, str]:
    """Write a new private key to ``out`` (0600) and its public key to ``out.pub``; returns (pub, key id)."""
    from cryptography.hazmat.primitives import serialization

    ed25519 = _crypto()
    out, pub = Path(out), Path(str(out) + ".pub")
    refuse_existing(out, force)
    refuse_existing(pub, force)
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.replace(tmp, out)
    write_text(pub, f"{KEY_TAG} {_b64(raw)} {key_id(raw)}\n")
    return pub, key_id(raw)


def sign(sums: bytes, key_file: Path) -> bytes:
    """The ``SHA256SUMS.sig`` member for ``sums``, signed with the private key in ``key_file``."""
    from cryptography.hazmat.primitives import serialization

    ed25519 = _crypto()
    try:
        key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise RegistryError(f"{key_file}: not a readable Ed25519 private key ({e})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise RegistryError(f"{key_file}: not an Ed25519 private key (make one with `alexnet-tvm keygen`)")
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    body = {"algorithm": ALGORITHM, "public_key": _b64(raw), "signature": _b64(key.sign(sums))}
    return (json.dumps(body, sort_keys=True) + "\n").encode()


def read_public_keys(path: Path) -> list[bytes]:
    """Every key of a ``.pub`` or trusted-keys file (raw 32 bytes each); at least one."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise RegistryError(f"{path}: unreadable public key file ({e})") from None
    keys = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if parts[0] != KEY_TAG or len(parts) < 2:
            raise RegistryError(f"{path}:{n}: not a '{KEY_TAG} <base64>' public key line")
        keys.append(_unb64(parts[1], f"{path}:{n}", 32))
    if not keys:
        raise RegistryError(f"{path}: holds no public key")
    return keys


@dataclass
class Trust:
    """The public keys a pull accepts; ``required``: an unsigned pack is refused."""

    keys: list[bytes]
    required: bool = True

    @classmethod
    def from_files(cls, files: list[Path] | tuple[Path, ...]) -> "Trust | None":
        keys = [k for f in files for k in read_public_keys(f)]
        return cls(keys) if keys else None


def check_signature(sums: bytes, sig: bytes | None, trust: Trust | None, where: str) -> str | None:
    """The signer's key id, or ``None`` for an unsigned pack that no trust requires signed.

    A signature that is present is always checked (a broken one means the digest
    list was changed after signing); ``trust`` further demands one of its keys.
    """
    if sig is None:
        if trust is not None and trust.required:
            raise RegistryError(f"{where}: the pack is unsigned and --trust requires a signature; refusing it")
        return None
    try:
        body = json.loads(sig)
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict) or body.get("algorithm") != ALGORITHM:
        raise RegistryError(f"{where}: {SIG} is not an Ed25519 signature; refusing it")
    raw = _unb64(body.get("public_key"), f"{where}: {SIG} public_key", 32)
    signature = _unb64(body.get("signature"), f"{where}: {SIG} signature", 64)
    if trust is not None and raw not in trust.keys:
        raise RegistryError(f"{where}: signed by {key_id(raw)}, which is not a trusted key; refusing it")
    from cryptography.exceptions import InvalidSignature

    try:
        _crypto().Ed25519PublicKey.from_public_bytes(raw).verify(signature, sums)
    except InvalidSignature:
        raise RegistryError(f"{where}: the signature does not match SHA256SUMS (tampered); refusing it") from None
    return key_id(raw)
