"""The embedded CRM: cases and their activity log in the project database (the default source).

It stands in for a vendor CRM on the embedded default and in tests, with the same contract:
a cursor feed of new (and changed) cases, idempotent write-backs, and an append-only activity
log. Every compare-and-write happens in one transaction with the case row locked, so concurrent
writers of the same update record it once. Every operation re-runs itself when its database
connection drops (`reconnecting`, as the job store's do): each is one transaction, rolled back
with the connection, and safe to run again after a commit whose acknowledgement was lost,
because every write compares first (an existing case, a write-back already applied, a test
record already reset, change nothing the second time).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, insert, or_, select
from sqlalchemy.exc import IntegrityError

from submissions_pipeline.crm.base import (
    CaseNotFound,
    CasePage,
    ChangedAfterSubmission,
    CrmActivity,
    CrmCaseRecord,
    CrmClient,
    CrmConflict,
    CrmStatus,
    CrmUpdate,
    InvalidCrmRecord,
    InvalidCursor,
    NotATestRecord,
)
from submissions_pipeline.crm.schema import crm_activity, crm_cases
from submissions_pipeline.domain.clock import Clock, utcnow
from submissions_pipeline.store import migrate
from submissions_pipeline.store.engine import make_engine
from submissions_pipeline.store.reconnect import reconnecting

#: PostgreSQL advisory lock serialising sequence hand-out (any constant unique to this use).
_FEED_LOCK_KEY = 0x43524D_FEED  # "CRM" + FEED

_AUTOMATION = "automation"

#: A case the feed hands out: new, or changed since intake last answered for it.
_IN_FEED = or_(crm_cases.c.status == CrmStatus.NEW.value, crm_cases.c.changed.is_(True))
#: Who enters and revises cases in the activity log.
_CRM = "crm"


def _aware(dt: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _encode_cursor(sequence: int) -> str:
    return str(sequence)


def _decode_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not isinstance(cursor, str) or not cursor.isdigit():
        raise InvalidCursor(f"not a cursor of the embedded CRM: {cursor!r}")
    return int(cursor)


def _row_to_record(row: Row[Any]) -> CrmCaseRecord:
    return _record(row._mapping)


def _record(m: Mapping[str, Any]) -> CrmCaseRecord:
    return CrmCaseRecord(
        case_id=m["case_id"],
        oem=m["oem"],
        raw=m["raw"],
        sequence=m["sequence"],
        cursor=_encode_cursor(m["sequence"]),
        status=CrmStatus(m["status"]),
        job_id=m["job_id"],
        reference=m["reference"],
        evidence_url=m["evidence_url"],
        failure=m["failure"],
        field_errors=m["field_errors"] or {},
        submitted_by_automation=m["submitted_by_automation"],
        submitted_by=m["submitted_by"],
        created_at=_aware(m["created_at"]),
        updated_at=_aware(m["updated_at"]),
        revision=m["revision"],
        changed=m["changed"],
        changed_after_submission=m["changed_after_submission"],
    )


def _required_text(raw: dict[str, Any], key: str, max_len: int) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidCrmRecord(f"a CRM record needs a {key}")
    if len(value) > max_len:
        raise InvalidCrmRecord(f"{key} is longer than {max_len} characters")
    return value


class EmbeddedCrm(CrmClient):
    """The CRM in the project database, on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine, clock: Clock = utcnow):
        self.engine = engine
        self.clock = clock

    @classmethod
    def from_url(cls, url: str, clock: Clock = utcnow, migrate_schema: bool = True) -> EmbeddedCrm:
        """Open (and by default migrate) the CRM at a database URL."""
        crm = cls(make_engine(url), clock=clock)
        if migrate_schema:
            migrate.upgrade(crm.engine)
        return crm

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()

    # ---------------------------------------------------------------- cases in
    @reconnecting
    def add_case(self, raw: dict[str, Any]) -> str:
        """Insert a raw case as a person would enter it (it may be invalid); returns its id.

        Only case_id and oem are required, because the CRM files cases by them. Adding a
        case_id again with the same content changes nothing, so imports can re-run. With other
        content it records a new revision of the case: the new content replaces the old (the
        activity log keeps both), and the case is marked changed and moved to the end of the
        feed, so intake reads it again whatever its status, and decides what the change means
        for a claim that may already be on its way.
        """
        if not isinstance(raw, dict):
            raise InvalidCrmRecord("a CRM record is a JSON object")
        case_id = _required_text(raw, "case_id", 64)
        oem = _required_text(raw, "oem", 32)
        try:
            # Store exactly what reads will return; refuse what JSON cannot hold.
            stored = json.loads(json.dumps(raw))
        except (TypeError, ValueError) as exc:
            raise InvalidCrmRecord(f"case {case_id} is not JSON: {exc}") from None
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                self._lock_feed(conn)
                current = self._find_locked(conn, case_id)
                if current is None:
                    self._insert(conn, case_id, oem, stored, now)
                elif current["raw"] != stored:
                    revision = {
                        "raw": stored,
                        "oem": oem,
                        "test_record": stored.get("test_record") is True,
                        "revision": current["revision"] + 1,
                        "changed": True,
                        "sequence": self._next_sequence(conn),
                    }
                    self._apply(conn, current, revision, "case_revised", _CRM, now)
        except IntegrityError:
            # Only reachable if another writer bypassed the feed lock; the case is there now.
            with self.engine.connect() as conn:
                if not self._exists(conn, case_id):
                    raise
        return case_id

    def accept_pushed_case(self, raw: dict[str, Any]) -> str:
        """A pushed case joins the feed exactly as an entered one (`add_case`)."""
        return self.add_case(raw)

    @reconnecting
    def reset_test_record(self, case_id: str) -> CrmCaseRecord:
        """Put a test record back to new at the end of the feed, so the next read sees it again.

        This is how an integration's 2-3 toggleable test records exercise idempotence and
        retries on demand. Real cases cannot be reset: that would resubmit a real claim.
        """
        now = self.clock()
        with self.engine.begin() as conn:
            self._lock_feed(conn)
            current = self._locked(conn, case_id)
            if current["test_record"] is not True:
                raise NotATestRecord(f"case {case_id} is not a test record")
            values = {
                "status": CrmStatus.NEW.value,
                "job_id": None,
                "reference": None,
                "evidence_url": None,
                "failure": None,
                "field_errors": {},
                "submitted_by_automation": False,
                "submitted_by": None,
                # A pending revision stays pending: intake still owes it an answer.
                "changed_after_submission": None,
            }
            last = conn.execute(select(func.max(crm_cases.c.sequence))).scalar()
            if current["sequence"] == last and all(current[k] == v for k, v in values.items()):
                # Already reset and last in the feed: a re-run after a lost commit
                # acknowledgement, or a second reset with nothing to undo.
                return _record(current)
            values["sequence"] = self._next_sequence(conn)
            return self._apply(conn, current, values, "test_record_reset", _AUTOMATION, now)

    # ---------------------------------------------------------------- CrmClient
    @reconnecting
    def list_new_cases(self, oem: str, cursor: str | None, limit: int = 500) -> CasePage:
        """Cases of one OEM in status new or changed, strictly after `cursor`, in feed order.

        Sequence numbers are handed out in commit order (a revision takes a new one), so a case
        that commits after a read always lands after that read's cursor and is never skipped.
        """
        after = _decode_cursor(cursor)
        if limit <= 0:
            return CasePage(records=[], next_cursor=cursor)
        q = (
            select(crm_cases)
            .where(
                crm_cases.c.oem == oem,
                _IN_FEED,
                crm_cases.c.sequence > after,
            )
            .order_by(crm_cases.c.sequence)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            records = [_row_to_record(r) for r in conn.execute(q)]
        return CasePage(records=records, next_cursor=records[-1].cursor if records else cursor)

    @reconnecting
    def count_unrouted_cases(self, oems: Collection[str]) -> dict[str, int]:
        """Cases waiting in the feed whose OEM key is none of `oems`, by exact key."""
        q = (
            select(crm_cases.c.oem, func.count())
            .where(
                _IN_FEED,
                crm_cases.c.oem.not_in(list(oems)),
            )
            .group_by(crm_cases.c.oem)
            .order_by(crm_cases.c.oem)
        )
        with self.engine.connect() as conn:
            return {oem: count for oem, count in conn.execute(q)}

    @reconnecting
    def get_case(self, case_id: str) -> CrmCaseRecord:
        """One case by id; raises CaseNotFound."""
        with self.engine.connect() as conn:
            row = conn.execute(select(crm_cases).where(crm_cases.c.case_id == case_id)).first()
        if row is None:
            raise CaseNotFound(case_id)
        return _row_to_record(row)

    @reconnecting
    def list_cases(
        self, *, oem: str | None = None, status: CrmStatus | None = None
    ) -> list[CrmCaseRecord]:
        """Every case (of an OEM, in a status), in feed order: for reports, demos and tests."""
        q = select(crm_cases).order_by(crm_cases.c.sequence)
        if oem is not None:
            q = q.where(crm_cases.c.oem == oem)
        if status is not None:
            q = q.where(crm_cases.c.status == CrmStatus(status).value)
        with self.engine.connect() as conn:
            return [_row_to_record(r) for r in conn.execute(q)]

    @reconnecting
    def write_back(self, update: CrmUpdate) -> bool:
        """Write the pipeline's outcome to the case; True when something changed (False too
        when a re-run after a lost commit acknowledgement finds it written already).

        Compare and write happen in one transaction with the row locked, so the same update
        from several writers at once changes the case and logs an activity row exactly once.
        A case a human submitted by hand is not overwritten: that raises CrmConflict, because
        an automated outcome arriving for it means the claim may have gone in twice. A case
        flagged as changed after submission keeps reading needs attention (the outcome's other
        fields are written) until a person settles it. An update that answers for the case's
        newest revision takes the case out of the feed.
        """
        now = self.clock()
        values = {
            "status": update.status.value,
            "job_id": update.job_id,
            "reference": update.reference,
            "evidence_url": update.evidence_url,
            "failure": update.failure.model_dump(mode="json") if update.failure else None,
            "field_errors": dict(update.field_errors),
            "submitted_by_automation": update.submitted_by_automation,
            "submitted_by": _AUTOMATION if update.submitted_by_automation else None,
        }
        with self.engine.begin() as conn:
            current = self._locked(conn, update.case_id)
            if current["status"] == CrmStatus.HUMAN_SUBMITTED.value:
                raise CrmConflict(
                    f"case {update.case_id} was submitted by hand by {current['submitted_by']}; "
                    f"automation reported {update.status.value} (job {update.job_id})"
                )
            if current["changed_after_submission"] is not None:
                values["status"] = CrmStatus.NEEDS_ATTENTION.value
            if update.revision == current["revision"]:
                values["changed"] = False
            return self._apply(conn, current, values, "write_back", _AUTOMATION, now) is not None

    @reconnecting
    def flag_changed_after_submission(self, case_id: str, flag: ChangedAfterSubmission) -> bool:
        """Record that a revision arrived after the case was (or may have been) submitted.

        The case reads needs attention (a case a person submitted keeps its status: the flag
        is beside it) until a person records what they did; it leaves the feed when the flag
        answers for its newest revision. Idempotent like every write here.
        """
        now = self.clock()
        with self.engine.begin() as conn:
            current = self._locked(conn, case_id)
            values: dict[str, Any] = {"changed_after_submission": flag.model_dump(mode="json")}
            if current["status"] != CrmStatus.HUMAN_SUBMITTED.value:
                values["status"] = CrmStatus.NEEDS_ATTENTION.value
            if flag.revision == current["revision"]:
                values["changed"] = False
            applied = self._apply(
                conn, current, values, "changed_after_submission", _AUTOMATION, now
            )
            return applied is not None

    @reconnecting
    def record_human_submission(self, case_id: str, reference: str, by: str) -> bool:
        """Record that a person submitted the case by hand; True when something changed.

        Raises CrmConflict when automation already submitted the case: a second, manual
        submission is a duplicate claim someone has to withdraw, not a status to overwrite.
        It settles a case flagged as changed after submission: the person has dealt with the
        claim on the portal, and the reference is the one that stands.
        """
        if not reference.strip() or not by.strip():
            raise ValueError("a human submission needs the portal reference and who submitted")
        now = self.clock()
        values = {
            "status": CrmStatus.HUMAN_SUBMITTED.value,
            "reference": reference,
            "submitted_by_automation": False,
            "submitted_by": by,
            "changed_after_submission": None,
        }
        with self.engine.begin() as conn:
            current = self._locked(conn, case_id)
            if (
                current["status"] == CrmStatus.SUBMITTED.value
                and current["submitted_by_automation"]
            ):
                raise CrmConflict(
                    f"case {case_id} was already submitted by automation "
                    f"(reference {current['reference']}); {by} reports {reference}"
                )
            return self._apply(conn, current, values, "human_submission", by, now) is not None

    @reconnecting
    def history(self, case_id: str) -> list[CrmActivity]:
        """The case's activity log, oldest first."""
        q = (
            select(crm_activity)
            .where(crm_activity.c.case_id == case_id)
            .order_by(crm_activity.c.activity_id)
        )
        with self.engine.connect() as conn:
            out = []
            for r in conn.execute(q):
                m = dict(r._mapping)
                m["at"] = _aware(m["at"])
                out.append(CrmActivity.model_validate(m))
            return out

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def _lock_feed(conn: Connection) -> None:
        # Held until commit, so sequence numbers become visible in the order they are handed
        # out (a plain SERIAL can commit 11 before 10, and a reader at cursor 11 skips 10).
        # SQLite needs nothing: every transaction starts with BEGIN IMMEDIATE (engine.py).
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_FEED_LOCK_KEY)))

    @staticmethod
    def _next_sequence(conn: Connection) -> int:
        top = conn.execute(select(func.max(crm_cases.c.sequence))).scalar()
        return (top or 0) + 1

    @staticmethod
    def _exists(conn: Connection, case_id: str) -> bool:
        q = select(crm_cases.c.case_id).where(crm_cases.c.case_id == case_id)
        return conn.execute(q).first() is not None

    @staticmethod
    def _find_locked(conn: Connection, case_id: str) -> dict[str, Any] | None:
        row = conn.execute(
            select(crm_cases).where(crm_cases.c.case_id == case_id).with_for_update()
        ).first()
        if row is None:
            return None
        current = dict(row._mapping)
        current["field_errors"] = current["field_errors"] or {}
        return current

    @classmethod
    def _locked(cls, conn: Connection, case_id: str) -> dict[str, Any]:
        current = cls._find_locked(conn, case_id)
        if current is None:
            raise CaseNotFound(case_id)
        return current

    def _insert(
        self, conn: Connection, case_id: str, oem: str, stored: dict[str, Any], now: datetime
    ) -> None:
        conn.execute(
            insert(crm_cases).values(
                case_id=case_id,
                oem=oem,
                sequence=self._next_sequence(conn),
                raw=stored,
                test_record=stored.get("test_record") is True,
                status=CrmStatus.NEW.value,
                field_errors={},
                submitted_by_automation=False,
                created_at=now,
                updated_at=now,
                revision=1,
                changed=False,
            )
        )

    @staticmethod
    def _apply(
        conn: Connection,
        current: dict[str, Any],
        values: dict[str, Any],
        kind: str,
        actor: str,
        now: datetime,
    ) -> CrmCaseRecord | None:
        """Write the fields that differ and log them; None (and no log row) when none differ."""
        changes = {k: {"from": current[k], "to": v} for k, v in values.items() if current[k] != v}
        if not changes:
            return None
        row = conn.execute(
            crm_cases.update()
            .where(crm_cases.c.case_id == current["case_id"])
            .values(updated_at=now, **{k: values[k] for k in changes})
            .returning(*crm_cases.c)
        ).one()
        conn.execute(
            insert(crm_activity).values(
                case_id=current["case_id"],
                kind=kind,
                actor=actor,
                job_id=values.get("job_id", current["job_id"]),
                status=row.status,
                changes=changes,
                at=now,
            )
        )
        return _row_to_record(row)
