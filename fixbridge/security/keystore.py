"""Encrypted Ethereum keystore files (the Web3 Secret Storage format geth and eth-account write).

The password comes from an environment variable or a file (its first line); it is read when the
bridge starts, used once to decrypt, and never logged, journaled or put in an error message.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account


class KeystoreError(ValueError):
    """A keystore that cannot be read or decrypted. The message never contains the password."""


def read_password(*, env: str | None = None, file: Path | None = None) -> str:
    if env is not None:
        value = os.environ.get(env)
        if not value:
            raise KeystoreError(f"environment variable {env} is not set")
        return value
    if file is not None:
        try:
            text = file.read_text()
        except OSError as e:
            raise KeystoreError(f"password file {file} cannot be read ({e.strerror})") from None
        value = text.splitlines()[0] if text else ""
        if not value:
            raise KeystoreError(f"password file {file} is empty")
        return value
    raise KeystoreError("no password source: set password_env or password_file")


def decrypt_keystore(path: Path, password: str) -> str:
    """The 0x-hex private key inside the keystore at `path`."""
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise KeystoreError(f"keystore {path} cannot be read ({e.strerror})") from None
    except ValueError:
        raise KeystoreError(f"keystore {path} is not JSON") from None
    try:
        key = Account.decrypt(data, password)
    except ValueError:
        raise KeystoreError(f"keystore {path} cannot be decrypted: wrong password or damaged file") from None
    except Exception as e:  # a malformed keystore; say what kind, never echo its content
        raise KeystoreError(f"keystore {path} is not a valid keystore ({type(e).__name__})") from None
    return "0x" + bytes(key).hex()


def write_keystore(path: Path, private_key: str, password: str, *, iterations: int | None = None) -> str:
    """Encrypt `private_key` into a new keystore file (mode 0600). Returns the address."""
    data = Account.encrypt(private_key, password, iterations=iterations)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    return Account.from_key(private_key).address
