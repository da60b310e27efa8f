"""Per-portal state: field and step specs, knobs, sessions, drafts and the reference sequence.

:class:`PortalState` is the bottom layer of every portal (see ``sandbox/portal.py``): it knows no
HTML and no routes, only what a portal remembers between requests and how it decides the stable
keys its random events are drawn under.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from starlette.requests import Request

from sandbox.faults import FaultConfig, FaultDice
from sandbox.ledger import Ledger
from sandbox.references import FIRST_SEQUENCE, make_reference

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class FieldSpec:
    """One input of a portal form. ``name`` is stable across UI versions; labels and ids are not."""

    key: str  # the common key: case_id, vin, repair_date, mileage, ..., document, username...
    name: str  # the form field name the portal posts
    label: tuple[str, str]  # (v1, v2) visible label text
    kind: str = "text"  # text | password | date | textarea | file | number
    hint: tuple[str | None, str | None] | None = None


@dataclass(frozen=True)
class StepSpec:
    """One page of the claim form before the review page."""

    slug: str
    title: tuple[str, str]
    fields: tuple[FieldSpec, ...]


@dataclass
class Session:
    token: str
    dealer_id: str
    created_at: datetime
    last_seen: datetime
    #: False between aurora's password page and its TOTP page.
    verified: bool = True


@dataclass
class Draft:
    """A claim being filled in; belongs to a dealer (not a session) so a re-login can resume it."""

    draft_id: str
    dealer_id: str
    vin: str
    vehicle: str
    case_id: str = ""
    raw: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    steps_done: set[str] = field(default_factory=set)
    document: dict[str, Any] | None = None


_DRAFT_IN_PATH = re.compile(r"/(dr[0-9a-f]{12})(?=/|$)")


class PortalState:
    """What one portal remembers: knobs in force, sessions, drafts, ledger, dice, sequence."""

    key: ClassVar[str]
    name: ClassVar[str]  # the OEM's name, e.g. "Northwind Motors"
    session_cookie: ClassVar[str]
    paths: ClassVar[dict[str, str]]  # login, logout, home, search, start, claim, lookup
    login_fields: ClassVar[tuple[FieldSpec, ...]]
    search_fields: ClassVar[tuple[FieldSpec, ...]]
    steps: ClassVar[tuple[StepSpec, ...]]
    review_slug: ClassVar[str] = "review"
    models: ClassVar[tuple[str, ...]]
    #: Whether sessions expire after ``session_ttl_s`` of inactivity (kestrel only).
    sessions_expire: ClassVar[bool] = False

    def __init__(
        self,
        config: FaultConfig | Mapping[str, Any] | None = None,
        *,
        clock: Clock = utc_now,
        **knobs: Any,
    ) -> None:
        base = config if isinstance(config, FaultConfig) else FaultConfig(**dict(config or {}))
        self.defaults = FaultConfig(**{**base.model_dump(), **knobs})
        self._config = self.defaults.model_copy(deep=True)
        self.clock = clock
        self.ledger = Ledger()
        self.dice = FaultDice(self.key)
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._drafts: dict[str, Draft] = {}
        self._sequence = FIRST_SEQUENCE

    # ----------------------------------------------------------------- configuration

    @property
    def config(self) -> FaultConfig:
        """The knobs in force (a snapshot; replaced whole on every change)."""
        return self._config

    def configure(self, **knobs: Any) -> FaultConfig:
        """Change some knobs; raises pydantic.ValidationError on an unknown knob or bad value."""
        with self._lock:
            self._config = FaultConfig(**{**self._config.model_dump(), **knobs})
            return self._config

    def reset(self) -> None:
        """Back to the constructor's knobs with an empty ledger, no sessions and fresh dice."""
        with self._lock:
            self._config = self.defaults.model_copy(deep=True)
            self._sessions.clear()
            self._drafts.clear()
            self._sequence = FIRST_SEQUENCE
        self.ledger.clear()
        self.dice.reset()

    def config_for(self, request: Request) -> FaultConfig:
        """The knobs the request started under, so one page never mixes v1 and v2."""
        cfg = request.scope.get("state", {}).get("sandbox_config")
        return cfg if isinstance(cfg, FaultConfig) else self._config

    # ----------------------------------------------------------------- sessions

    def session_remaining(self, session: Session, cfg: FaultConfig) -> float | None:
        """Seconds of idle time the session has left; None where sessions never expire."""
        if not self.sessions_expire:
            return None
        return cfg.session_ttl_s - (self.clock() - session.last_seen).total_seconds()

    def session_for(self, request: Request) -> tuple[Session | None, bool]:
        """The request's live session (touched), and whether an expired one was just dropped."""
        token = request.cookies.get(self.session_cookie)
        if not token:
            return None, False
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None, False
            remaining = self.session_remaining(session, self.config_for(request))
            if remaining is not None and remaining <= 0:
                del self._sessions[token]
                return None, True
            session.last_seen = self.clock()
            return session, False

    def start_session(self, dealer_id: str, *, verified: bool = True) -> Session:
        now = self.clock()
        session = Session(secrets.token_urlsafe(24), dealer_id, now, now, verified)
        with self._lock:
            self._sessions[session.token] = session
        return session

    def end_session(self, request: Request) -> None:
        token = request.cookies.get(self.session_cookie)
        with self._lock:
            self._sessions.pop(token or "", None)

    # ----------------------------------------------------------------- drafts

    def new_draft(self, dealer_id: str, vin: str, case_id: str = "") -> Draft:
        draft = Draft(
            draft_id="dr" + secrets.token_hex(6),
            dealer_id=dealer_id,
            vin=vin,
            vehicle=self.vehicle_for(vin),
            case_id=case_id,
        )
        with self._lock:
            self._drafts[draft.draft_id] = draft
        return draft

    def draft(self, draft_id: str, dealer_id: str) -> Draft | None:
        with self._lock:
            draft = self._drafts.get(draft_id)
        return draft if draft is not None and draft.dealer_id == dealer_id else None

    def step_url(self, draft: Draft, slug: str) -> str:
        return f"{self.paths['claim']}/{draft.draft_id}/{slug}"

    def case_id_hidden(self) -> bool:
        """Whether the case id is entered at search and then travels as a hidden field."""
        return all(spec.key != "case_id" for step in self.steps for spec in step.fields)

    def vehicle_for(self, vin: str) -> str:
        digest = hashlib.sha256(f"{self.key}|{vin}".encode()).digest()
        model = self.models[digest[1] % len(self.models)]
        return f"{2018 + digest[0] % 8} {self.name.split()[0]} {model}"

    # ----------------------------------------------------------------- decisions

    def fault_key(self, method: str, path: str, cookies: Mapping[str, str]) -> str:
        """The stable key random events of one request are decided under.

        Dealer + method + path, with a draft id in the path replaced by its case id: the n-th
        GET of case C's review page by dealer D is decided the same way whatever runs beside it.
        """
        dealer = "anon"
        token = cookies.get(self.session_cookie)
        with self._lock:
            if token and token in self._sessions:
                dealer = self._sessions[token].dealer_id
            match = _DRAFT_IN_PATH.search(path)
            if match:
                draft = self._drafts.get(match.group(1))
                case = draft.case_id if draft else "?"
                path = path.replace(match.group(1), f"case={case}")
        return f"{dealer}|{method}|{path}"

    def next_reference(self, cfg: FaultConfig, case_id: str) -> str:
        with self._lock:
            sequence = self._sequence
            self._sequence += 1
        return make_reference(
            self.key,
            cfg.ui_version,
            sequence=sequence,
            year=self.clock().year,
            seed=cfg.seed,
            case_id=case_id,
        )

    def today(self) -> date:
        # Accept "today" in the dealer's timezone too: a repair dated today must never be "future".
        return max(self.clock().date(), datetime.now().date())
