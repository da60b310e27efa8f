"""Dealer portal credentials, read only from the environment or a secret file, never logged."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from urllib.parse import quote, quote_plus

from pydantic import BaseModel, SecretStr


class DealerCredentials(BaseModel):
    """One dealer's login on one OEM portal. Secrets stay SecretStr until the moment of typing."""

    oem: str
    dealer_id: str
    username: str
    password: SecretStr
    totp_secret: SecretStr | None = None

    def secrets(self) -> list[str]:
        """The values that must never appear in a log, trace, artifact or the CRM."""
        out = [self.password.get_secret_value()]
        if self.totp_secret is not None:
            out.append(self.totp_secret.get_secret_value())
        return out


class MissingCredentials(KeyError):
    """No credentials configured for this OEM and dealer (an auth failure, not a crash)."""


class CredentialProvider(ABC):
    """Where dealer credentials come from (environment, secret manager)."""

    @abstractmethod
    def get(self, oem: str, dealer_id: str) -> DealerCredentials:
        """Credentials for one dealer on one portal; MissingCredentials when unknown."""

    @abstractmethod
    def all_secrets(self) -> list[str]:
        """Every secret value this provider knows, for redaction and secret scans."""


class JsonCredentialProvider(CredentialProvider):
    """Credentials from a JSON document: ``{"oem": {"dealer_id": {"username", "password",
    "totp_secret"?}}}``, given inline (``SUBMISSIONS_CREDENTIALS``) or as a file path
    (``SUBMISSIONS_CREDENTIALS_FILE``, e.g. a mounted Kubernetes secret)."""

    def __init__(self, document: dict[str, dict[str, dict[str, str]]]):
        self._creds: dict[tuple[str, str], DealerCredentials] = {}
        for oem, dealers in document.items():
            for dealer_id, c in dealers.items():
                self._creds[(oem, dealer_id)] = DealerCredentials(oem=oem, dealer_id=dealer_id, **c)

    def get(self, oem: str, dealer_id: str) -> DealerCredentials:
        try:
            return self._creds[(oem, dealer_id)]
        except KeyError:
            raise MissingCredentials(f"no credentials for dealer {dealer_id} on {oem}") from None

    def all_secrets(self) -> list[str]:
        return [s for c in self._creds.values() for s in c.secrets()]


#: Secrets shorter than this (one-time codes) are redacted only where they stand as a whole
#: value, so that a 6-digit code does not blank out an unrelated number in a trace.
SHORT_SECRET = 12


def secret_forms(secret: str) -> list[tuple[str, str]]:
    """(text, replacement) pairs for the ways a secret shows up in stored text: as typed,
    JSON-escaped and form-encoded; a short one only as a whole JSON string or form value."""
    if len(secret) < SHORT_SECRET:
        return [(f'"{secret}"', '"***"'), (f"={secret}&", "=***&"), (f'={secret}"', '=***"')]
    forms = {secret, json.dumps(secret)[1:-1], quote_plus(secret), quote(secret, safe="")}
    return [(f, "***") for f in sorted(forms, key=len, reverse=True) if f]


def redact(text: str, secrets: list[str]) -> str:
    """Replace every known secret, in every form it takes, before a text is logged or stored."""
    for s in secrets:
        if s:
            for form, replacement in secret_forms(s):
                text = text.replace(form, replacement)
    return text


def redact_bytes(data: bytes, secrets: list[str]) -> bytes:
    """`redact` for raw bytes (trace archives' members)."""
    for s in secrets:
        if s:
            for form, replacement in secret_forms(s):
                data = data.replace(form.encode(), replacement.encode())
    return data
