"""AES-256-GCM for backups (whole files, streamed in chunks) and small blobs, via ``cryptography``.

Keys are 32 random bytes, written as 64 hex characters: in an environment variable, or in a key
file named by another variable (:func:`load_key`). :func:`key_id` is a short public fingerprint
stored beside ciphertext, so a wrong key is named as such instead of as damage.

File format (:func:`encrypt_file`)::

    b"CANDOR-AESGCM-1\\n"   magic (16 bytes)
    salt                    16 random bytes; the file key is HKDF-SHA-256(key, salt)
    chunk*                  AES-GCM of 1 MiB plaintext chunks (ciphertext + 16-byte tag)

Chunk ``i`` uses the nonce ``i`` (11 bytes, big-endian) followed by ``1`` for the final chunk and
``0`` otherwise, with the header as associated data (the STREAM construction also used by age).
Reordering, dropping, editing or truncating chunks — at a chunk boundary too — fails
authentication: :class:`DecryptError`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from analysis import config

MAGIC = b"CANDOR-AESGCM-1\n"
SALT = 16
TAG = 16
CHUNK = 1 << 20
KEY_BYTES = 32


class BadKeyError(ValueError):
    """A configured key is malformed (not 64 hex characters, or an unreadable key file)."""


class DecryptError(ValueError):
    """Ciphertext does not authenticate: the wrong key, or the bytes were altered or truncated."""


def parse_key(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise BadKeyError(
            f"{where} must hold a 256-bit key as 64 hex characters "
            "(make one with `python -m analysis keygen FILE`)"
        )
    return key


def load_key(env: str, file_env: str) -> bytes | None:
    """The key in ``$env`` (hex), else in the file ``$file_env``; ``None`` when neither is set."""
    value = config.setting(env)
    if value:
        return parse_key(value, env)
    named = config.setting(file_env)
    if not named:
        return None
    try:
        return parse_key(Path(named).read_text(), f"{file_env} ({named})")
    except OSError as exc:
        raise BadKeyError(f"cannot read the key file {named} ({file_env}): {exc.strerror}") from exc


def generate_key_file(path: Path) -> None:
    """Write a new random key to ``path`` (mode 0600); refuses to overwrite an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(KEY_BYTES) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def key_id(key: bytes) -> str:
    """A public fingerprint of ``key`` (reveals nothing usable about it)."""
    return hmac.new(key, b"candor key id", hashlib.sha256).hexdigest()[:16]


def _file_key(key: bytes, salt: bytes) -> AESGCM:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=b"candor file encryption"
    ).derive(key)
    return AESGCM(derived)


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def encrypt_file(src: Path, dst: Path, key: bytes) -> None:
    """Encrypt ``src`` into ``dst`` (created; fsynced)."""
    salt = secrets.token_bytes(SALT)
    header = MAGIC + salt
    aead = _file_key(key, salt)
    with src.open("rb") as inp, dst.open("xb") as out:
        out.write(header)
        index = 0
        chunk = inp.read(CHUNK)
        while True:
            following = inp.read(CHUNK)
            last = not following
            out.write(aead.encrypt(_nonce(index, last), chunk, header))
            if last:
                break
            chunk, index = following, index + 1
        out.flush()
        os.fsync(out.fileno())


def decrypt_file(src: Path, dst: Path, key: bytes) -> None:
    """Decrypt ``src`` into ``dst``; :class:`DecryptError` (and ``dst`` removed) if it does not
    authenticate."""
    out = dst.open("xb")  # never overwrites (nor, on failure, removes) an existing file
    try:
        with src.open("rb") as inp, out:
            header = inp.read(len(MAGIC) + SALT)
            if len(header) != len(MAGIC) + SALT or not header.startswith(MAGIC):
                raise DecryptError(f"{src.name} is not a Candor-encrypted file")
            aead = _file_key(key, header[len(MAGIC) :])
            index = 0
            chunk = inp.read(CHUNK + TAG)
            while True:
                following = inp.read(CHUNK + TAG)
                last = not following
                try:
                    out.write(aead.decrypt(_nonce(index, last), chunk, header))
                except InvalidTag as exc:
                    raise DecryptError(
                        f"{src.name} does not decrypt: the wrong key, or the "
                        "file was altered or truncated"
                    ) from exc
                if last:
                    break
                chunk, index = following, index + 1
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        dst.unlink(missing_ok=True)
        raise


def seal(data: bytes, key: bytes, aad: bytes) -> bytes:
    """One small object (an image blob): random 12-byte nonce + AES-GCM(data) with ``aad``."""
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(key).encrypt(nonce, data, aad)


def unseal(blob: bytes, key: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(blob[:12], blob[12:], aad)
    except (InvalidTag, ValueError) as exc:
        raise DecryptError("does not decrypt: the wrong key, or the bytes were altered") from exc
