"""Who may use the console: accounts with scrypt-hashed passwords, lockout, signed sessions, CSRF.

Accounts live in a JSON file (a mounted secret) that holds only password hashes. A session is a
signed cookie (HMAC-SHA256 over the user, role, expiry and a nonce); the CSRF token of a session
is derived from its nonce, so a form posted from another site, which cannot read the page,
cannot carry it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Protocol

#: scrypt cost: 2**14 rounds x 8 x 128 bytes = 16 MiB per check, memory-hard by design.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
#: Failed sign-ins in a row that lock an account, and for how long.
LOCKOUT_AFTER, LOCKOUT_S = 5, 15 * 60


class Role(StrEnum):
    """Viewers look; operators also act on jobs (re-drive, review)."""

    VIEWER = "viewer"
    OPERATOR = "operator"


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$hash` (base64) for an accounts file."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether `password` matches a `hash_password` string (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(base64.b64decode(digest)),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


@dataclass(frozen=True)
class Account:
    name: str
    role: Role
    password_hash: str


class Accounts:
    """The accounts file: `{"accounts": {name: {"role": ..., "password_hash": ...}}}`."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> dict[str, Account]:
        """Read anew on every sign-in, so an added or removed account counts at once."""
        if not self.path.is_file():
            return {}
        doc = json.loads(self.path.read_text())
        return {
            name: Account(name, Role(a["role"]), a["password_hash"])
            for name, a in doc.get("accounts", {}).items()
        }

    def put(self, name: str, password: str, role: Role) -> None:
        """Add or replace an account (the file is written owner-only)."""
        doc = json.loads(self.path.read_text()) if self.path.is_file() else {"accounts": {}}
        doc.setdefault("accounts", {})[name] = {
            "role": role.value,
            "password_hash": hash_password(password),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(doc, out, indent=2)


class LockoutStore(Protocol):
    """Where failed sign-ins are counted (the job store: shared by every console process)."""

    def sign_in_locked_until(self, name: str) -> datetime | None: ...

    def sign_in_failed(self, name: str, *, lock_after: int, lock_for: timedelta) -> bool: ...

    def sign_in_succeeded(self, name: str) -> None: ...


class Lockout:
    """Failed sign-ins per account name; locked accounts are refused without a password check.

    Counted in the database, so a restart of the console does not unlock an account under
    attack, and every console process sees the same count.
    """

    def __init__(self, store: LockoutStore):
        self.store = store

    def is_locked(self, name: str) -> bool:
        return self.store.sign_in_locked_until(name) is not None

    def failed(self, name: str) -> None:
        self.store.sign_in_failed(
            name, lock_after=LOCKOUT_AFTER, lock_for=timedelta(seconds=LOCKOUT_S)
        )

    def succeeded(self, name: str) -> None:
        self.store.sign_in_succeeded(name)


@dataclass(frozen=True)
class Session:
    user: str
    role: Role
    expires_at: float
    nonce: str

    @property
    def can_act(self) -> bool:
        return self.role is Role.OPERATOR


class SessionSigner:
    """Signs and reads session cookies; derives each session's CSRF token."""

    def __init__(self, key: bytes, ttl_s: int, clock: Callable[[], float] = time.time):
        self.key, self.ttl_s, self.clock = key, ttl_s, clock

    def _mac(self, data: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self.key, data, hashlib.sha256).digest()).decode()

    def issue(self, account: Account) -> tuple[str, Session]:
        session = Session(
            account.name, account.role, self.clock() + self.ttl_s, secrets.token_urlsafe(16)
        )
        body = json.dumps(
            {
                "u": session.user,
                "r": session.role.value,
                "e": session.expires_at,
                "n": session.nonce,
            }
        ).encode()
        data = base64.urlsafe_b64encode(body)
        return f"{data.decode()}.{self._mac(data)}", session

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie proves, or None (absent, forged, or expired)."""
        if not cookie or "." not in cookie:
            return None
        data, mac = cookie.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac(data.encode())):
            return None
        try:
            doc = json.loads(base64.urlsafe_b64decode(data.encode()))
            session = Session(doc["u"], Role(doc["r"]), float(doc["e"]), doc["n"])
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires_at > self.clock() else None

    def csrf_token(self, session: Session) -> str:
        return self._mac(f"csrf:{session.nonce}".encode())

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(token or "", self.csrf_token(session))


def session_key(secret: str | None, key_file: Path) -> bytes:
    """The signing key: the configured secret, or a random one kept owner-only in `key_file`
    (so sessions survive a restart of the console)."""
    if secret:
        return secret.encode()
    if key_file.is_file():
        return key_file.read_bytes()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key
