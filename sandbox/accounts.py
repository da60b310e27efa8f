"""Deterministic demo dealer accounts for the sandbox portals (usernames, passwords, TOTP secrets).

Credentials are derived from a fixed sandbox key with HMAC so that every process (portal, demo
seeding, tests) computes the same values without sharing a file, and so that the passwords are
long and distinctive enough for the secret-scanning tests to look for them in logs and evidence.
They protect nothing: the portals only ever listen on loopback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import pyotp

#: The fixed key every sandbox credential is derived from. Not a secret: a namespace.
SANDBOX_KEY = b"submissions-pipeline/sandbox/v1"

#: Dealer ids that exist on every sandbox portal.
DEALERS: tuple[str, ...] = ("D1001", "D1002", "D1003", "D1004", "D1005")

#: OEM keys that have accounts (kept here, not imported from the portals, so this module stays
#: importable by code that never starts a server).
OEMS: tuple[str, ...] = ("northwind", "aurora", "kestrel")


class UnknownDealerError(KeyError):
    """Raised for an (oem, dealer_id) pair the sandbox has no account for."""


@dataclass(frozen=True)
class DealerCredentials:
    """What a dealer types into an OEM portal's login form."""

    oem: str
    dealer_id: str
    username: str
    password: str
    #: Base32 TOTP secret; only aurora asks for a one-time code.
    totp_secret: str | None = None

    def totp_code(self, at: datetime | None = None) -> str:
        """The 6-digit code an authenticator app would show now (or at ``at``)."""
        if self.totp_secret is None:
            raise ValueError(f"{self.oem} does not use TOTP")
        totp = pyotp.TOTP(self.totp_secret)
        return totp.now() if at is None else totp.at(at)

    def __repr__(self) -> str:  # keep secrets out of logs and assertion messages
        return (
            f"DealerCredentials(oem={self.oem!r}, dealer_id={self.dealer_id!r}, "
            f"username={self.username!r})"
        )


_PASSWORD_TAG = {"northwind": "nw", "aurora": "au", "kestrel": "kt"}


def _derive(oem: str, dealer_id: str, purpose: str) -> bytes:
    return hmac.new(SANDBOX_KEY, f"{oem}|{dealer_id}|{purpose}".encode(), hashlib.sha256).digest()


def _username(oem: str, dealer_id: str) -> str:
    number = dealer_id.lower()
    if oem == "northwind":
        return f"nw-{number}-service"
    if oem == "aurora":
        return f"service.{number}@dealers.aurora.test"
    return f"KT{dealer_id[1:]}OPS"


def _password(oem: str, dealer_id: str) -> str:
    # "sbx" prefix + 32 url-safe characters + a fixed tail: long, distinctive, and mixes classes.
    body = base64.urlsafe_b64encode(_derive(oem, dealer_id, "password")).decode().rstrip("=")
    return f"sbx-{_PASSWORD_TAG[oem]}-{body[:32]}!9"


def _totp_secret(oem: str, dealer_id: str) -> str:
    return base64.b32encode(_derive(oem, dealer_id, "totp")[:20]).decode()


#: Passwords that replace the derived ones, by (oem, dealer_id): set through `password_overrides`.
_PASSWORD_OVERRIDES: dict[tuple[str, str], str] = {}


@contextmanager
def password_overrides(passwords: Mapping[tuple[str, str], str]) -> Iterator[None]:
    """Give some dealers other passwords (short ones, to test redaction) while the block runs:
    the portals accept them and `credentials_document` hands them out; restored afterwards."""
    unknown = [key for key in passwords if key[0] not in OEMS or key[1] not in DEALERS]
    if unknown:
        raise UnknownDealerError(f"no sandbox account for {unknown}")
    saved = dict(_PASSWORD_OVERRIDES)
    _PASSWORD_OVERRIDES.update(passwords)
    try:
        yield
    finally:
        _PASSWORD_OVERRIDES.clear()
        _PASSWORD_OVERRIDES.update(saved)


def credentials(oem: str, dealer_id: str) -> DealerCredentials:
    """The demo credentials of ``dealer_id`` on ``oem``'s portal."""
    if oem not in OEMS or dealer_id not in DEALERS:
        raise UnknownDealerError(f"no sandbox account for {oem}/{dealer_id}")
    return DealerCredentials(
        oem=oem,
        dealer_id=dealer_id,
        username=_username(oem, dealer_id),
        password=_PASSWORD_OVERRIDES.get((oem, dealer_id)) or _password(oem, dealer_id),
        totp_secret=_totp_secret(oem, dealer_id) if oem == "aurora" else None,
    )


def all_credentials(oem: str) -> list[DealerCredentials]:
    """Every dealer account of one portal, in dealer-id order."""
    return [credentials(oem, dealer_id) for dealer_id in DEALERS]


def dealer_for_username(oem: str, username: str) -> str | None:
    """The dealer id a portal's login form resolves ``username`` to, or None if unknown."""
    wanted = username.strip().lower()
    for dealer_id in DEALERS:
        if _username(oem, dealer_id).lower() == wanted:
            return dealer_id
    return None


def credentials_document(oems: list[str]) -> dict[str, dict[str, dict[str, str]]]:
    """Every sandbox dealer's credentials in the JSON shape the pipeline's credential provider
    reads (``SUBMISSIONS_CREDENTIALS`` / ``SUBMISSIONS_CREDENTIALS_FILE``)."""
    doc: dict[str, dict[str, dict[str, str]]] = {}
    for oem in oems:
        for dealer_id in DEALERS:
            c = credentials(oem, dealer_id)
            entry = {"username": c.username, "password": c.password}
            if c.totp_secret:
                entry["totp_secret"] = c.totp_secret
            doc.setdefault(oem, {})[dealer_id] = entry
    return doc
