"""Dealer portal credentials, read only from the environment or a secret file, never logged."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

from pydantic import BaseModel, SecretStr

from submissions_pipeline.redaction import Redactor


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


def redact(text: str, secrets: list[str], fields: Iterable[str] = ()) -> str:
    """Mask every known secret, and every secret field's value, before a text is logged or
    stored (see `Redactor` for what counts as a secret's appearance)."""
    return Redactor(secrets, fields).redact(text)


def redact_bytes(data: bytes, secrets: list[str], fields: Iterable[str] = ()) -> bytes:
    """`redact` for raw bytes (trace archives' members)."""
    return Redactor(secrets, fields).redact_bytes(data)
