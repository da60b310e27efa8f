"""What every test portal shares: dealer accounts with short passwords, sessions, the ledger."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import RedirectResponse

from sandbox.ledger import Ledger, LedgerEntry

DEALERS = ("D1001", "D1002", "D1003", "D1004", "D1005")


class PortalKnobs(BaseModel):
    """What a test turns: a slow login, dropped confirmations, pages that need a person."""

    login_delay_s: float = Field(0.0, ge=0, description="Seconds before the login redirect.")
    drop_after_submit: bool = Field(
        False, description="Record a submission, then answer 502 instead of the confirmation."
    )
    captcha_at_signin: bool = Field(
        False, description="Answer good credentials with a 'verify you are human' CAPTCHA page."
    )
    single_sign_on: bool = Field(
        False, description="Send the sign-in page to a corporate sign-on form on another host."
    )


class TestPortal:
    """A portal's state; subclasses add the routes (`app`) and their own markup."""

    __test__ = False  # not a pytest class
    oem: ClassVar[str]
    #: The reference format: a prefix then six digits.
    prefix: ClassVar[str]

    def __init__(self) -> None:
        self.ledger = Ledger()
        self.knobs = PortalKnobs()
        self._sessions: dict[str, str] = {}
        self._counter = 100_000
        self.app: Any = None

    # ---------------------------------------------------------------- accounts
    @classmethod
    def username(cls, dealer_id: str) -> str:
        return f"{dealer_id.lower()}@{cls.oem}.test"

    @classmethod
    def password(cls, dealer_id: str) -> str:
        # Short on purpose: redaction must hold for secrets of a few characters.
        return f"{cls.oem[:2]}{dealer_id[-2:]}q"

    @classmethod
    def credentials_document(cls) -> dict[str, dict[str, dict[str, str]]]:
        """The JSON credentials document (`SUBMISSIONS_CREDENTIALS`) for every dealer."""
        return {
            cls.oem: {
                d: {"username": cls.username(d), "password": cls.password(d)} for d in DEALERS
            }
        }

    def dealer_for(self, username: str, password: str) -> str | None:
        for dealer in DEALERS:
            if username == self.username(dealer) and password == self.password(dealer):
                return dealer
        return None

    # ---------------------------------------------------------------- sessions
    async def open_session(self, dealer: str, target: str) -> RedirectResponse:
        await asyncio.sleep(self.knobs.login_delay_s)
        token = secrets.token_hex(8)
        self._sessions[token] = dealer
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(f"{self.oem}_session", token, httponly=True, samesite="lax")
        return response

    def dealer_of(self, request: Request) -> str | None:
        return self._sessions.get(request.cookies.get(f"{self.oem}_session", ""))

    # ---------------------------------------------------------------- ledger
    def record(self, dealer: str, claim: dict[str, Any]) -> LedgerEntry:
        self._counter += 1
        entry = LedgerEntry(
            oem=self.oem,
            case_id=claim["case_id"],
            vin=claim["vin"],
            dealer_id=dealer,
            reference=f"{self.prefix}{self._counter}",
            received_at=datetime.now(UTC),
            payload={k: v for k, v in claim.items() if k not in ("case_id", "vin")},
            ui_version="v1",
            response_dropped=self.knobs.drop_after_submit,
        )
        self.ledger.record(entry)
        return entry

    def find(self, *, vin: str | None = None, case_id: str | None = None) -> list[LedgerEntry]:
        return [
            e
            for e in self.ledger.entries()
            if (vin is None or e.vin == vin.strip().upper())
            and (case_id is None or e.case_id == case_id.strip())
        ]

    def reset(self) -> None:
        self.ledger.clear()
        self.knobs = PortalKnobs()
        self._sessions.clear()
