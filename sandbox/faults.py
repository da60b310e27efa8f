"""Fault-injection knobs of a sandbox portal and the seeded dice that decide each random event.

Every random event (an HTTP 503, a pop-up, a dropped response after submit) is decided by
hashing ``(seed, portal, event kind, stable key, per-key counter)`` rather than by drawing from a
shared RNG, so that concurrent requests for other cases or dealers never change the outcome of
this one: the n-th request of dealer D1001 to a given page for case C is always decided the same
way under the same seed.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PopupKind = Literal["cookie", "survey", "session"]
POPUP_KINDS: tuple[PopupKind, ...] = ("cookie", "survey", "session")


class FaultConfig(BaseModel):
    """The knobs of one portal. Defaults give a well-behaved portal (no faults, v1 UI)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    error_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Fraction of page requests answered HTTP 503 before the handler runs "
        "(a 503 never records anything).",
    )
    garbage_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Fraction of page requests answered HTTP 200 with a page that is not the "
        "portal at all (a CDN or maintenance page): nothing is recorded.",
    )
    garbage_paths: list[str] = Field(
        default_factory=list,
        description="Requests always answered with that page: a path, or a method and a path "
        "('POST /auth/signin': the sign-in itself answers with it).",
    )
    latency_ms: int = Field(
        0, ge=0, le=60_000, description="Milliseconds added to every page request (not admin)."
    )
    search_latency_s: float = Field(
        0.0, ge=0.0, le=30.0, description="Seconds the VIN search step takes (slow search)."
    )
    search_lag_s: float = Field(
        0.0,
        ge=0,
        le=86_400,
        description="Seconds a submission stays out of the lookup after it was recorded (a "
        "search index that trails the portal's own records).",
    )
    popup_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Probability that each enabled pop-up kind appears on a page render.",
    )
    popup_kinds: list[PopupKind] = Field(
        default_factory=lambda: list(POPUP_KINDS),
        description="Pop-up kinds that may appear: cookie, survey, session.",
    )
    popup_delay_ms: int = Field(
        0,
        ge=0,
        le=60_000,
        description="Delay before a pop-up shows on a loaded page (0: with the page); a delay "
        "makes pop-ups appear while a driver is already interacting, as real ones do.",
    )
    reject_login: bool = Field(
        False, description="Every login fails with the invalid-credentials message."
    )
    drop_after_submit_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Fraction of final submits recorded in the ledger but answered HTTP 504 "
        "with no reference (the browser never sees the confirmation).",
    )
    ui_version: Literal["v1", "v2"] = Field(
        "v1",
        description="v2 renames labels, ids, button texts and test ids and changes the "
        "reference format.",
    )
    renamed_texts: dict[str, str] = Field(
        default_factory=dict,
        description='Text keys reworded in place, e.g. {"review.submit": "Submit claim"}: '
        "one button renamed by a minor portal release, with no new UI version.",
    )
    session_ttl_s: float = Field(
        900.0,
        gt=0.0,
        le=86_400.0,
        description="Idle seconds after which a kestrel session expires (others ignore it).",
    )
    heavy_pages: bool = Field(
        False,
        description="Pages weigh what real portals do: a ~1.5 MB script bundle that must run "
        "before the page exists, a web font, two large images and a slow third-party "
        "analytics script from analytics.localhost (sandbox/heavy.py).",
    )
    third_party_delay_ms: int = Field(
        2_000,
        ge=0,
        le=30_000,
        description="How long the heavy pages' third-party analytics script takes to answer.",
    )
    seed: int = Field(0, description="Seed of every random decision (pop-ups, 503s, drops).")


#: Knob names, for CLIs and admin validation.
KNOBS: tuple[str, ...] = tuple(FaultConfig.model_fields)


class FaultDice:
    """Seeded, order-independent dice: one counter per (kind, key), one hash per roll."""

    def __init__(self, portal: str) -> None:
        self._portal = portal
        self._counters: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def roll(self, seed: int, kind: str, key: str) -> float:
        """A number in [0, 1) for the next ``kind`` event of ``key``; advances its counter."""
        with self._lock:
            n = self._counters[(kind, key)]
            self._counters[(kind, key)] = n + 1
        return unit_hash(seed, self._portal, kind, key, n)

    def happens(self, seed: int, kind: str, key: str, rate: float) -> bool:
        """Whether the next ``kind`` event of ``key`` fires at probability ``rate``."""
        value = self.roll(seed, kind, key)
        return rate > 0.0 and value < rate

    def reset(self) -> None:
        """Forget every counter, so the same request sequence replays the same outcomes."""
        with self._lock:
            self._counters.clear()


def unit_hash(seed: int, portal: str, kind: str, key: str, n: int) -> float:
    """Map the event identity to a uniform float in [0, 1)."""
    digest = hashlib.sha256(f"{seed}|{portal}|{kind}|{key}|{n}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
