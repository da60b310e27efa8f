"""The small interface the runner drives; adapters/ implement it, one per OEM."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from playwright.async_api import Page
from pydantic import BaseModel

from submissions_pipeline.credentials import DealerCredentials
from submissions_pipeline.domain import Case
from submissions_pipeline.domain.oem import OemSettings

#: Wraps the typing and the submitting of credentials so the evidence never records them (see
#: EvidenceRecorder.secret_section); pass values that exist only for the moment (a one-time code)
#: to have them redacted too.
SecretSection = Callable[..., AbstractAsyncContextManager[None]]


class LookupResult(BaseModel):
    """An earlier submission found on the portal's lookup page."""

    reference: str
    details: dict[str, str] = {}


class PortalAdapter(ABC):
    """Drives one OEM portal: log in, find the vehicle, fill, submit, read the reference, look up.

    Each method is one step of the runner's template; the runner times it, records the
    milestone, and turns whatever it raises into a reason code. Raise the typed failures of
    `submissions_pipeline.runner.errors` where the portal says something definite.
    """

    #: The OEM key this adapter drives; the registry checks it against the key it is listed by.
    oem: str

    def __init__(self, settings: OemSettings, folder: Path):
        if settings.key != self.oem:
            raise ValueError(
                f"{type(self).__name__} drives {self.oem!r} but is registered as {settings.key!r}"
            )
        self.settings = settings
        #: The OEM's folder: its settings file and the data files the adapter reads.
        self.folder = folder

    @property
    def display_name(self) -> str:
        """How people name the OEM."""
        return self.settings.display_name

    @abstractmethod
    async def install_popup_handlers(self, page: Page) -> None:
        """Register handlers that dismiss this portal's pop-ups whenever they appear."""

    @abstractmethod
    async def ensure_logged_in(
        self, page: Page, base_url: str, creds: DealerCredentials, secret_section: SecretSection
    ) -> None:
        """Open the portal logged in as the dealer (reusing a valid session when the page has
        one); raise AuthFailure when the portal rejects the credentials."""

    @abstractmethod
    async def detect_version(self, page: Page) -> str:
        """The portal's UI version; an unknown one raises AdapterBug(UNKNOWN_UI_VERSION)."""

    @abstractmethod
    async def search(self, page: Page, base_url: str, case: Case) -> None:
        """Start a new submission and find the case's vehicle (the slow step)."""

    @abstractmethod
    async def fill(self, page: Page, case: Case) -> None:
        """Fill every form step up to the review page, ready to submit."""

    @abstractmethod
    async def submit(self, page: Page) -> None:
        """Tick the attestation and click submit. Nothing else: the runner records the click."""

    @abstractmethod
    async def read_reference(self, page: Page) -> str:
        """Wait for the confirmation and return the reference parsed with the versioned regex."""

    @abstractmethod
    async def lookup(
        self, page: Page, base_url: str, case: Case, reference: str | None = None
    ) -> LookupResult | None:
        """Look the case up among earlier submissions; None when the portal has none.
        `reference` is the portal's own reference when one was already read for the case."""

    async def storage_state(self, page: Page) -> dict:
        """The session to reuse for this dealer's next job.

        Cookies only: that is all a context is given back (`BrowserWorker.open_context`), and a
        full `storage_state()` also reads every origin's local storage, once per job.
        Override for a portal that keeps its session elsewhere.
        """
        return {"cookies": await page.context.cookies()}
