"""Secrets at rest: authenticated encryption (AES-256-GCM) under one key.

For secrets the server must send on (an agent's token, an MCP server's header values, OAuth
tokens): they are stored sealed, ``wdsec1:<key id>:<base64url(nonce + ciphertext + tag)>``, and
opened only when used. A value sealed under another key, or altered, does not open: it raises
:class:`SecretKeyError` and never yields garbage. Secrets that are only checked (API tokens, login
codes) are hashed instead, never sealed.

The key is ``WORKDOCK_SECRET_KEY`` (base64 of 32 bytes) or, without it, ``<data dir>/secret.key``
(made on first start, mode 0600).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_ENV = "WORKDOCK_SECRET_KEY"
KEY_FILE = "secret.key"
PREFIX = "wdsec1"
_NONCE_BYTES = 12
_KEY_BYTES = 32


class SecretKeyError(Exception):
    """The key is missing, malformed, or not the one the stored secrets were sealed with."""


def new_key() -> str:
    """A fresh key, as ``WORKDOCK_SECRET_KEY`` and ``secret.key`` hold it."""
    return base64.urlsafe_b64encode(secrets.token_bytes(_KEY_BYTES)).decode().rstrip("=")


def parse_key(text: str) -> bytes:
    """32 bytes from base64 (standard or URL-safe, padded or not), e.g. ``openssl rand -base64 32``."""
    cleaned = text.strip()
    try:
        key = base64.urlsafe_b64decode(
            cleaned.replace("+", "-").replace("/", "_") + "=" * (-len(cleaned) % 4)
        )
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != _KEY_BYTES:
        raise SecretKeyError(
            f"a secret key is {_KEY_BYTES} random bytes in base64 (make one with `openssl rand -base64 32`)"
        )
    return key


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"workdock secret key id\0" + key).hexdigest()[:8]

    def seal(self, plain: str) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plain.encode(), PREFIX.encode())
        return f"{PREFIX}:{self.key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str) -> str:
        prefix, _, rest = sealed.partition(":")
        key_id, _, payload = rest.partition(":")
        if prefix != PREFIX or not payload:
            raise SecretKeyError("a stored secret is not sealed (was the database migrated?)")
        if key_id != self.key_id:
            raise SecretKeyError(
                f"a stored secret was sealed with key {key_id}, but the key in use is {self.key_id}"
            )
        try:
            raw = base64.urlsafe_b64decode(payload)
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], PREFIX.encode())
        except (binascii.Error, ValueError, InvalidTag):
            raise SecretKeyError(
                f"a stored secret does not open with key {self.key_id}: it was altered"
            ) from None
        return plain.decode()


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX + ":")


@dataclass(frozen=True)
class LoadedKey:
    box: SecretBox
    source: str  # where the key came from, for messages
    created: Path | None = None  # the key file made just now, if it was


def key_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    return (os.environ if environ is None else environ).get(KEY_ENV, "").strip() or None


def load_key(data_dir: Path, key: str | None) -> LoadedKey:
    """The key given (``WORKDOCK_SECRET_KEY``), else ``<data_dir>/secret.key`` (made if missing)."""
    if key:
        return LoadedKey(SecretBox(parse_key(key)), KEY_ENV)
    path = data_dir / KEY_FILE
    try:
        return LoadedKey(SecretBox(parse_key(path.read_text())), str(path))
    except FileNotFoundError:
        pass
    except SecretKeyError as exc:
        raise SecretKeyError(f"{path}: {exc}") from None
    key = new_key()
    # 0600 from the first byte; O_EXCL: two starts at once never write two different keys.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return LoadedKey(SecretBox(parse_key(key)), str(path), created=path)
