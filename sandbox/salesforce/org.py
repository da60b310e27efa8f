"""The local Salesforce org's state: records, tokens, the write ledger, fault knobs and a clock.

One lock guards everything, so the server thread and a test reading the ledger never see half
a write. Time comes from a clock with an offset a test can advance (`advance`), so "the API
limit is exceeded for a minute" passes in no wall time.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.salesforce import soql

ORG_ID = "00D000000000001AAA"
INTEGRATION_USER = "005000000000001AAA"
HUMAN_USER = "005000000000002AAA"

#: Key prefixes of the record ids the org hands out, per object (others get `a0X`).
ID_PREFIXES = {"Case": "500", "User": "005"}

#: Fields Salesforce maintains itself: a write naming one is an INVALID_FIELD_FOR_INSERT_UPDATE.
SYSTEM_FIELDS = (
    "Id",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
)


@dataclass
class ApiError(Exception):
    """An error the REST API answers with: HTTP status and Salesforce's error code."""

    status: int
    code: str
    message: str
    fields: list[str] = field(default_factory=list)

    def body(self) -> list[dict[str, Any]]:
        return [{"message": self.message, "errorCode": self.code, "fields": self.fields}]


@dataclass
class ValidationRule:
    """Rejects a write to `object` whose record has `record_field` == `equals`, naming `field`."""

    object: str
    record_field: str
    equals: Any
    field: str
    message: str = "Rejected by a validation rule."


@dataclass
class Faults:
    """Fault knobs (all off by default)."""

    limit_exceeded_until: datetime | None = None  # REQUEST_LIMIT_EXCEEDED (403) until then
    unavailable_next: int = 0  # the next N API calls answer 503
    expire_sessions_after: int | None = None  # every token dies after N more API calls
    validation_rules: list[ValidationRule] = field(default_factory=list)


@dataclass
class LedgerEntry:
    """One record written through the API (a write that changed nothing is a write too)."""

    at: datetime
    op: str  # create | update | upsert
    object: str
    id: str
    fields: dict[str, Any]
    created: bool = False


@dataclass
class Client:
    """A connected app that may get tokens, and the user its tokens act as."""

    client_id: str
    client_secret: str | None = None
    public_key_pem: bytes | None = None  # for the JWT bearer flow
    username: str | None = None
    user_id: str = INTEGRATION_USER


class Org:
    """One org: objects (name -> id -> record), tokens, ledger and faults."""

    def __init__(self, *, batch_size: int = 2000, daily_limit: int = 1_000_000):
        self.lock = threading.RLock()
        self.batch_size = batch_size
        self.daily_limit = daily_limit
        self.clients: dict[str, Client] = {}
        self.reset()

    def reset(self) -> None:
        """Forget every record, token, ledger entry, cursor and fault (clients stay)."""
        with self.lock:
            self.objects: dict[str, dict[str, dict[str, Any]]] = {}
            self.tokens: dict[str, str] = {}  # token -> user id
            self.ledger: list[LedgerEntry] = []
            self.faults = Faults()
            self.offset = timedelta()
            self.frozen_at: datetime | None = None
            self.api_calls = 0
            self.logins = 0
            self._cursors: dict[str, tuple[str, list[dict[str, Any]]]] = {}
            self._serial = 0

    # ------------------------------------------------------------------ time
    def now(self) -> datetime:
        """The org's clock: wall time plus what tests advanced, to the second like
        SystemModstamp (many records share a stamp; Id breaks the tie)."""
        base = self.frozen_at or datetime.now(UTC)
        return (base + self.offset).replace(microsecond=0)

    def freeze(self) -> None:
        """Stop the clock here (`advance` still moves it): every write lands in one second."""
        with self.lock:
            self.frozen_at = datetime.now(UTC)

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.offset += timedelta(seconds=seconds)

    # ------------------------------------------------------------------ auth
    def register_client(self, client: Client) -> None:
        with self.lock:
            self.clients[client.client_id] = client

    def issue_token(self, user_id: str) -> str:
        with self.lock:
            token = f"{ORG_ID}!{secrets.token_urlsafe(24)}"
            self.tokens[token] = user_id
            self.logins += 1
            return token

    def expire_sessions(self) -> None:
        """Every token handed out so far stops working (INVALID_SESSION_ID)."""
        with self.lock:
            self.tokens.clear()

    def authorize(self, header: str | None) -> str:
        """The user a request acts as; applies the session and limit knobs, counts the call."""
        with self.lock:
            f = self.faults
            if f.expire_sessions_after is not None:
                if f.expire_sessions_after <= 0:
                    self.tokens.clear()
                    f.expire_sessions_after = None
                else:
                    f.expire_sessions_after -= 1
            token = (header or "").removeprefix("Bearer ").strip()
            user = self.tokens.get(token)
            if user is None:
                raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
            if f.limit_exceeded_until is not None and self.now() < f.limit_exceeded_until:
                raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            if f.unavailable_next > 0:
                f.unavailable_next -= 1
                raise ApiError(503, "SERVER_UNAVAILABLE", "Service temporarily unavailable.")
            self.api_calls += 1
            return user

    # ------------------------------------------------------------------ records
    def _new_id(self, obj: str) -> str:
        self._serial += 1
        prefix = ID_PREFIXES.get(obj, "a0X")
        return f"{prefix}{self._serial:012d}AAA"

    def table(self, obj: str) -> dict[str, dict[str, Any]]:
        return self.objects.setdefault(obj, {})

    def insert(self, obj: str, values: dict[str, Any], user: str = HUMAN_USER) -> str:
        """Create a record as `user` (the seeding path: not an API write, not in the ledger)."""
        with self.lock:
            now = self.now()
            record_id = self._new_id(obj)
            record = dict(values)
            record.update(
                Id=record_id,
                CreatedDate=now,
                CreatedById=user,
                LastModifiedDate=now,
                LastModifiedById=user,
                SystemModstamp=now,
            )
            if obj == "Case":
                record.setdefault("CaseNumber", f"{self._serial:08d}")
            self.table(obj)[record_id] = record
            return record_id

    def edit(
        self, obj: str, record_id: str, values: dict[str, Any], user: str = HUMAN_USER
    ) -> None:
        """Change a record as a person would in the UI (not in the ledger)."""
        with self.lock:
            record = self.table(obj)[record_id]
            now = self.now()
            record.update(values, LastModifiedDate=now, LastModifiedById=user, SystemModstamp=now)

    def records(self, obj: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.table(obj).values()]

    def get(self, obj: str, record_id: str) -> dict[str, Any]:
        with self.lock:
            record = self.table(obj).get(record_id)
            if record is None:
                raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
            return dict(record)

    def find(self, obj: str, field_name: str, value: Any) -> dict[str, Any] | None:
        with self.lock:
            for record in self.table(obj).values():
                if record.get(field_name) == value:
                    return record
            return None

    def write(
        self, op: str, obj: str, values: dict[str, Any], user: str, record_id: str | None = None
    ) -> tuple[str, bool]:
        """Create or update one record through the API; (id, created). Raises ApiError for a
        record-level failure (the caller reports it for this record only)."""
        with self.lock:
            bad = [k for k in values if k in SYSTEM_FIELDS or k == "attributes"]
            if bad:
                raise ApiError(
                    400,
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {', '.join(bad)}.",
                    bad,
                )
            current = self.table(obj).get(record_id) if record_id else None
            if record_id and current is None and op == "update":
                raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
            merged = {**(current or {}), **values}
            for rule in self.faults.validation_rules:
                if rule.object == obj and merged.get(rule.record_field) == rule.equals:
                    raise ApiError(
                        400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", rule.message, [rule.field]
                    )
            created = current is None
            if created:
                record_id = self.insert(obj, values, user=user)
            else:
                assert record_id is not None
                self.edit(obj, record_id, values, user=user)
            self.ledger.append(
                LedgerEntry(self.now(), op, obj, record_id, dict(values), created=created)
            )
            return record_id, created

    # ------------------------------------------------------------------ queries
    def query(self, text: str) -> soql.Query:
        try:
            return soql.parse(text)
        except soql.MalformedQuery as exc:
            raise ApiError(400, "MALFORMED_QUERY", str(exc)) from None

    def page(self, obj: str, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
        """The first batch of `rows`, and a locator for the rest (None when done)."""
        with self.lock:
            if len(rows) <= self.batch_size:
                return rows, None
            locator = f"01g{secrets.token_hex(6)}"
            self._cursors[locator] = (obj, rows[self.batch_size :])
            return rows[: self.batch_size], locator

    def more(self, locator: str) -> tuple[str, list[dict[str, Any]], str | None]:
        """The next batch after a locator: (object, rows, locator of the rest or None)."""
        with self.lock:
            found = self._cursors.pop(locator, None)
            if found is None:
                raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            obj, rows = found
            batch, rest = self.page(obj, rows)
            return obj, batch, rest

    # ------------------------------------------------------------------ ledger
    def writes(self, obj: str | None = None) -> list[LedgerEntry]:
        with self.lock:
            return [e for e in self.ledger if obj is None or e.object == obj]
