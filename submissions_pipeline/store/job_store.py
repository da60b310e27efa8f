"""The job store and global queue: the one source of truth for every submission job, by job_id.

All SQL that reads or writes jobs lives here. State changes go through `transition` (or the
claim/reap paths built on the same compare-and-set), each appending its event in the same
transaction, so the event history always equals the transitions made. On PostgreSQL a claim,
milestone or transition is one statement (lock, check, update and event together, see
`_pg_change_statement`): the worker's hot path costs one round trip per change.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any, NamedTuple

from pydantic import BaseModel
from sqlalchemy import (
    ARRAY,
    Connection,
    Engine,
    Row,
    Select,
    String,
    all_,
    and_,
    bindparam,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    true,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from submissions_pipeline.domain import (
    CLAIMABLE_STATES,
    TERMINAL_STATES,
    Case,
    FailureObject,
    Job,
    JobEvent,
    ReasonCode,
    RetryPolicy,
    RoutingDecision,
    Step,
    SubmissionState,
    check_transition,
    route_failure,
)
from submissions_pipeline.domain.states import LEASED_STATES, is_legal
from submissions_pipeline.store import migrate
from submissions_pipeline.store.engine import make_engine
from submissions_pipeline.store.schema import job_events, job_steps, jobs

S = SubmissionState
Clock = Callable[[], datetime]

_STEP_VALUES = frozenset(s.value for s in Step)

#: Default lease a claim grants; workers heartbeat well inside it.
DEFAULT_LEASE_S = 300.0

#: Job fields `transition` may set beside the state; everything else has its own path.
_SETTABLE = frozenset(
    {
        "reference",
        "submitted_by_automation",
        "evidence",
        "failure",
        "reason_code",
        "next_attempt_at",
        "duration_s",
        "crm_synced_at",
        "run_id",
        "attempt",
    }
)


class StoreError(Exception):
    """Base of the job store's own errors."""


class JobNotFound(StoreError):
    """No job with that id."""


class LeaseLost(StoreError):
    """The caller no longer holds the job's lease (it expired and was reaped or re-claimed)."""


class StaleState(StoreError):
    """The job was not in the state the caller expected: someone else moved it first."""


class EnqueueResult(BaseModel):
    """What enqueue did: the job that now stands for the case, and whether it is new."""

    job_id: str
    created: bool
    state: SubmissionState


class QueueStats(BaseModel):
    """Queue depth and latency, the numbers ops watch (queue age is the alarm bell)."""

    depth: dict[str, dict[str, int]]
    due_now: int
    oldest_due_age_s: float | None
    running: int
    p50_job_s: float | None
    p95_job_s: float | None
    finished_jobs_measured: int


#: Pauses before re-running a transaction whose database connection dropped.
RECONNECT_BACKOFF_S = (0.1, 0.5, 1.0, 2.0)


def _is_disconnect(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def reconnecting(method: Callable[..., Any]) -> Callable[..., Any]:
    """Re-run a store operation when the database connection drops under it.

    Each operation is one transaction, rolled back when the connection dies, so running it again
    is safe: compare-and-set transitions refuse to apply twice, claims of a commit whose
    acknowledgement was lost expire and are reaped, enqueue is idempotent.
    """

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for pause in (*RECONNECT_BACKOFF_S, None):
            try:
                return method(*args, **kwargs)
            except DBAPIError as exc:
                if pause is None or not _is_disconnect(exc):
                    raise
                time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper


def utcnow() -> datetime:
    """The system clock, in UTC."""
    return datetime.now(UTC)


def _aware(dt: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if dt is None or dt.tzinfo is not None:
        return dt
    return dt.replace(tzinfo=UTC)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _row_to_job(row: Row[Any]) -> Job:
    m = dict(row._mapping)
    for k in (
        "next_attempt_at",
        "lease_expires_at",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
        "crm_synced_at",
    ):
        m[k] = _aware(m[k])
    m["evidence"] = m.get("evidence") or {}
    return Job.model_validate(m)


def _job_from_json(m: dict[str, Any]) -> Job:
    # A row as PostgreSQL's row_to_json gives it: timestamps are ISO strings with their offset.
    m["evidence"] = m.get("evidence") or {}
    return Job.model_validate(m)


#: The whole updated row as one JSON value: psycopg and SQLAlchemy spend more Python on a
#: 31-column result than pydantic spends validating the same row from one JSON document.
_JOB_AS_JSON = func.row_to_json(jobs.table_valued(), type_=jobs.c.payload.type).label("job")


class _Locked(NamedTuple):
    """What the caller checks read from the locked row: no need to validate a whole Job."""

    job_id: str
    state: SubmissionState
    lease_owner: str | None
    version: int


@dataclass(frozen=True)
class _Change:
    """One compare-and-set on one job with the event it appends, ready for either backend.

    `allowed` and `lease_owner` are the caller checks as data, so PostgreSQL can apply them
    inside the one statement that writes; `check` raises the error the caller gets when the
    locked row fails them (and is what the portable path runs before it writes).
    """

    job_id: str
    allowed: frozenset[SubmissionState]
    lease_owner: str | None
    check: Callable[[_Locked], None]
    values: dict[str, Any]
    kind: str
    actor: str
    step: str | None
    reason_code: ReasonCode | str | None
    detail: dict[str, Any] | None
    at: datetime


def _as_states(
    states: SubmissionState | Iterable[SubmissionState] | None,
) -> frozenset[SubmissionState] | None:
    if states is None:
        return None
    if isinstance(states, SubmissionState):
        return frozenset({states})
    return frozenset(S(s) for s in states)


@functools.lru_cache(maxsize=512)
def _allowed_from(
    to_state: SubmissionState, expected: frozenset[SubmissionState] | None, leased: bool
) -> frozenset[SubmissionState]:
    """The states a transition may start from: the same rules `_check_caller` and
    `check_transition` apply, as a set the database can test."""
    allowed = frozenset(s for s in S if is_legal(s, to_state))
    if expected is not None:
        allowed &= expected
    if leased:
        allowed &= LEASED_STATES
    return allowed


_EVENT_COLUMNS = (
    "job_id",
    "kind",
    "from_state",
    "to_state",
    "actor",
    "step",
    "reason_code",
    "detail",
    "at",
)

# Statements used on every transition are built once: building and cache-keying a fresh
# SQLAlchemy statement costs more Python than the database takes to run it. Their parameters
# never share a name with a jobs column: SQLAlchemy would add such a parameter to an UPDATE's
# SET clause (even one inside a CTE).
_LOCK_FOR_CHECKS = (
    select(jobs.c.state, jobs.c.lease_owner, jobs.c.version)
    .where(jobs.c.job_id == bindparam("sel_job_id"))
    .with_for_update()
)
_INSERT_EVENT = insert(job_events)
_SELECT_JOB = select(jobs).where(jobs.c.job_id == bindparam("sel_job_id"))
_SELECT_JOB_FOR_UPDATE = _SELECT_JOB.with_for_update()


def _inline_states(states: Iterable[SubmissionState]) -> list[Any]:
    # Enum values written into the SQL rather than bound: they are part of a cached statement's
    # shape, and psycopg spends more Python dumping a list parameter than the lookup costs.
    return [literal_column(f"'{S(s).value}'", String) for s in sorted(states)]


def _set_params(values: dict[str, Any]) -> dict[str, Any]:
    return {f"set_{k}": v for k, v in values.items()}


def _set_clause(keys: tuple[str, ...]) -> dict[str, Any]:
    # Bound as set_<column>: SQLAlchemy reserves a column's own name in a SET clause.
    return {k: bindparam(f"set_{k}", type_=jobs.c[k].type) for k in keys}


@functools.lru_cache(maxsize=256)
def _cas_statement(keys: tuple[str, ...]) -> Any:
    """UPDATE guarded by the version read under the lock, returning the new row."""
    return (
        update(jobs)
        .where(jobs.c.job_id == bindparam("cas_job_id"), jobs.c.version == bindparam("cas_version"))
        .values(version=jobs.c.version + 1, **_set_clause(keys))
        .returning(*jobs.c)
    )


@functools.lru_cache(maxsize=256)
def _pg_change_statement(
    keys: tuple[str, ...], allowed: frozenset[SubmissionState], lease_checked: bool
) -> Select[Any]:
    """Lock, check, update and append the event in one PostgreSQL statement.

    ``locked`` takes the row lock (``FOR UPDATE``; under concurrent writers PostgreSQL hands it
    the newest row version and re-checks the UPDATE against it), ``changed`` applies the
    compare-and-set only when the locked row passes the caller checks, ``event`` appends the
    history row only for a row that changed. The result always carries the locked state and
    lease owner, so a refused change raises the same error as the portable path; no row at all
    means no such job. Run in autocommit: one round trip, atomic as a single statement.
    """
    locked = (
        select(jobs.c.job_id, jobs.c.state, jobs.c.lease_owner, jobs.c.version)
        .where(jobs.c.job_id == bindparam("lock_job_id", type_=String))
        .with_for_update()
        .cte("locked")
    )
    guard = [
        jobs.c.job_id == locked.c.job_id,
        locked.c.state.in_(_inline_states(allowed)),
    ]
    if lease_checked:
        guard.append(locked.c.lease_owner == bindparam("lock_owner", type_=String))
    changed = (
        update(jobs)
        .where(*guard)
        .values(version=jobs.c.version + 1, **_set_clause(keys))
        .returning(jobs.c.job_id, jobs.c.state, _JOB_AS_JSON)
        .cte("changed")
    )
    event = (
        insert(job_events)
        .from_select(
            _EVENT_COLUMNS,
            select(
                changed.c.job_id,
                bindparam("ev_kind", type_=String),
                locked.c.state,
                changed.c.state,
                bindparam("ev_actor", type_=String),
                bindparam("ev_step", type_=String),
                bindparam("ev_reason_code", type_=String),
                bindparam("ev_detail", type_=job_events.c.detail.type),
                bindparam("ev_at", type_=job_events.c.at.type),
            ).select_from(changed.join(locked, true())),
        )
        .cte("event")
    )
    return (
        select(
            locked.c.state.label("locked_state"),
            locked.c.lease_owner.label("locked_owner"),
            locked.c.version.label("locked_version"),
            changed.c.job,
        )
        .select_from(locked.outerjoin(changed, true()))
        .add_cte(event)
    )


def _pg_insert_steps_statement() -> Any:
    """One attempt's step timings as one INSERT from arrays: one statement for any count of
    steps, so SQLAlchemy compiles it once (it never caches a multi-row VALUES)."""
    c = job_steps.c
    steps = (
        func.unnest(
            bindparam("st_steps", type_=ARRAY(c.step.type)),
            bindparam("st_seconds", type_=ARRAY(c.seconds.type)),
            bindparam("st_ok", type_=ARRAY(c.ok.type)),
        )
        .table_valued("step", "seconds", "ok")
        .render_derived()
    )
    return insert(job_steps).from_select(
        ["job_id", "attempt", "step", "seconds", "ok", "at"],
        select(
            bindparam("st_job_id", type_=c.job_id.type),
            bindparam("st_attempt", type_=c.attempt.type),
            steps.c.step,
            steps.c.seconds,
            steps.c.ok,
            bindparam("st_at", type_=c.at.type),
        ).select_from(steps),
    )


_PG_INSERT_STEPS = _pg_insert_steps_statement()


def _claim_order(t: Any, prefer_redaction_sensitive: bool) -> list[Any]:
    order = [t.c.priority.desc(), t.c.next_attempt_at, t.c.created_at]
    if prefer_redaction_sensitive:
        order.insert(0, t.c.redaction_sensitive.desc())
    return order


@functools.lru_cache(maxsize=16)
def _pg_claim_statement(
    by_oem: bool, excludes_oems: bool, prefer_redaction_sensitive: bool
) -> Select[Any]:
    """Pick, lease and log up to `limit` due jobs in one PostgreSQL statement.

    ``FOR UPDATE SKIP LOCKED`` lets concurrent claimers pass each other by; the claimed rows
    come back (and their events are numbered) in pick order. Run in autocommit.
    """
    conds = [
        jobs.c.state.in_(_inline_states(CLAIMABLE_STATES)),
        jobs.c.next_attempt_at <= bindparam("c_now", type_=jobs.c.next_attempt_at.type),
    ]
    if by_oem:
        conds.append(jobs.c.oem == bindparam("c_oem", type_=String))
    if excludes_oems:
        conds.append(jobs.c.oem != all_(bindparam("c_excluded", type_=ARRAY(String))))
    picked = (
        select(jobs.c.job_id, jobs.c.state)
        .where(*conds)
        .order_by(*_claim_order(jobs, prefer_redaction_sensitive))
        .limit(bindparam("c_limit", type_=jobs.c.attempt.type))
        .with_for_update(skip_locked=True)
        .cte("picked")
    )
    now = bindparam("c_now", type_=jobs.c.updated_at.type)
    worker = bindparam("c_worker", type_=String)
    claimed = (
        update(jobs)
        .where(jobs.c.job_id == picked.c.job_id)
        .values(
            state=S.RUNNING.value,
            lease_owner=worker,
            lease_expires_at=bindparam("c_lease_expires_at", type_=jobs.c.lease_expires_at.type),
            attempt=jobs.c.attempt + 1,
            last_step=Step.CLAIMED.value,
            started_at=func.coalesce(jobs.c.started_at, now),
            run_id=bindparam("c_run_id", type_=String),
            updated_at=now,
            version=jobs.c.version + 1,
        )
        .returning(
            jobs.c.job_id,
            jobs.c.redaction_sensitive,
            jobs.c.priority,
            jobs.c.next_attempt_at,
            jobs.c.created_at,
            picked.c.state.label("from_state"),
            _JOB_AS_JSON,
        )
        .cte("claimed")
    )
    order = _claim_order(claimed, prefer_redaction_sensitive)
    event = (
        insert(job_events)
        .from_select(
            _EVENT_COLUMNS,
            select(
                claimed.c.job_id,
                literal("transition", String),
                claimed.c.from_state,
                literal(S.RUNNING.value, String),
                worker,
                literal(Step.CLAIMED.value, String),
                null(),
                bindparam("c_detail", type_=job_events.c.detail.type),
                now,
            ).order_by(*order),
        )
        .cte("claim_events")
    )
    return select(claimed.c.job).order_by(*order).add_cte(event)


class JobStore:
    """Jobs, their events, and the pull queue, on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine, clock: Clock = utcnow, policy: RetryPolicy | None = None):
        self.engine = engine
        self.clock = clock
        #: The retry budget every failure routed through this store is held to.
        self.policy = policy or RetryPolicy()
        # PostgreSQL runs each claim, transition and milestone as one data-modifying statement
        # (atomic on its own, so in autocommit: one round trip instead of BEGIN, lock, update,
        # event, COMMIT). SQLite has no data-modifying CTEs and keeps the portable path.
        self._one_statement = engine.dialect.name == "postgresql"
        self._autocommit = engine
        if self._one_statement:
            self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    @classmethod
    def from_url(
        cls,
        url: str,
        clock: Clock = utcnow,
        migrate_schema: bool = True,
        policy: RetryPolicy | None = None,
    ) -> JobStore:
        """Open (and by default migrate) the store at a database URL.

        Without a pre-ping: every operation already re-runs on a dropped connection.
        """
        store = cls(make_engine(url, pre_ping=False), clock=clock, policy=policy)
        if migrate_schema:
            store.migrate()
        return store

    def migrate(self) -> None:
        """Bring the schema to the newest migration."""
        migrate.upgrade(self.engine)

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()

    # ---------------------------------------------------------------- enqueue
    @reconnecting
    def enqueue(
        self,
        case: Case,
        *,
        actor: str = "crm",
        max_attempts: int | None = None,
        now: datetime | None = None,
    ) -> EnqueueResult:
        """Create the job for a case, once.

        Idempotent by the case's idempotency key (case + payload). A case that already has a live
        or successful job is never given a second one, whatever its payload: that is how a case is
        never submitted twice. Only a case whose earlier job ended failed or dead-lettered (a
        human fixed it) gets a new job.
        """
        now = now or self.clock()
        key = case.idempotency_key()
        existing = self._existing_for_case(case.case_id, key)
        if existing is not None:
            return EnqueueResult(job_id=existing.job_id, created=False, state=existing.state)
        job_id = uuid.uuid4().hex
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(jobs).values(
                        job_id=job_id,
                        case_id=case.case_id,
                        oem=case.oem,
                        dealer_id=case.dealer_id,
                        vin=case.vin,
                        idempotency_key=key,
                        payload=case.payload.model_dump(mode="json"),
                        priority=case.priority,
                        redaction_sensitive=case.redaction_sensitive,
                        test_record=case.test_record,
                        state=S.QUEUED.value,
                        attempt=0,
                        max_attempts=max_attempts or self.policy.max_attempts,
                        next_attempt_at=now,
                        submit_attempted=False,
                        submitted_by_automation=False,
                        created_at=now,
                        updated_at=now,
                        version=0,
                    )
                )
                self._event(conn, job_id, "transition", None, S.QUEUED, actor, now)
        except IntegrityError:
            existing = self._existing_for_case(case.case_id, key)
            if existing is None:
                raise
            return EnqueueResult(job_id=existing.job_id, created=False, state=existing.state)
        return EnqueueResult(job_id=job_id, created=True, state=S.QUEUED)

    def _existing_for_case(self, case_id: str, key: str) -> Job | None:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(jobs).where(jobs.c.case_id == case_id).order_by(jobs.c.created_at)
            ).all()
        for row in rows:
            job = _row_to_job(row)
            if job.idempotency_key == key:
                return job
            if job.state not in (S.FAILED_TERMINAL, S.DEAD_LETTERED):
                return job
        return None

    # ---------------------------------------------------------------- claim
    @reconnecting
    def claim(
        self,
        worker_id: str,
        *,
        oem: str | None = None,
        limit: int = 1,
        lease_s: float = DEFAULT_LEASE_S,
        run_id: str | None = None,
        exclude_oems: Iterable[str] = (),
        prefer_redaction_sensitive: bool = False,
        now: datetime | None = None,
    ) -> list[Job]:
        """Lease up to `limit` due jobs to a worker: highest priority first, then oldest due.

        `prefer_redaction_sensitive` puts redaction-sensitive cases ahead of everything else (a
        batch parameter ops set from the launchpad); `exclude_oems` skips OEMs whose batch halted.

        PostgreSQL locks the picked rows with ``FOR UPDATE SKIP LOCKED`` so concurrent claimers
        pass each other by; SQLite serialises writers with ``BEGIN IMMEDIATE`` (see engine.py),
        which gives the same guarantee. Each claim starts a new attempt.
        """
        if limit <= 0:
            return []
        now = now or self.clock()
        if self._one_statement:
            excluded = list(exclude_oems)
            stmt = _pg_claim_statement(oem is not None, bool(excluded), prefer_redaction_sensitive)
            params = {
                "c_now": now,
                "c_limit": limit,
                "c_worker": worker_id,
                "c_lease_expires_at": now + timedelta(seconds=lease_s),
                "c_run_id": run_id,
                "c_detail": {},
            }
            if oem is not None:
                params["c_oem"] = oem
            if excluded:
                params["c_excluded"] = excluded
            with self._autocommit.connect() as conn:
                return [_job_from_json(job) for (job,) in conn.execute(stmt, params)]
        conds = [
            jobs.c.state.in_([s.value for s in CLAIMABLE_STATES]),
            jobs.c.next_attempt_at <= now,
        ]
        if oem is not None:
            conds.append(jobs.c.oem == oem)
        excluded = list(exclude_oems)
        if excluded:
            conds.append(jobs.c.oem.not_in(excluded))
        order = [jobs.c.priority.desc(), jobs.c.next_attempt_at, jobs.c.created_at]
        if prefer_redaction_sensitive:
            order.insert(0, jobs.c.redaction_sensitive.desc())
        pick = (
            select(jobs.c.job_id, jobs.c.state, jobs.c.version)
            .where(and_(*conds))
            .order_by(*order)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claimed: list[Job] = []
        with self.engine.begin() as conn:
            for job_id, state, version in conn.execute(pick).all():
                result = conn.execute(
                    update(jobs)
                    .where(jobs.c.job_id == job_id, jobs.c.version == version)
                    .values(
                        state=S.RUNNING.value,
                        lease_owner=worker_id,
                        lease_expires_at=now + timedelta(seconds=lease_s),
                        attempt=jobs.c.attempt + 1,
                        last_step=Step.CLAIMED.value,
                        started_at=func.coalesce(jobs.c.started_at, now),
                        run_id=run_id,
                        updated_at=now,
                        version=jobs.c.version + 1,
                    )
                    .returning(*jobs.c)
                )
                row = result.first()
                if row is None:  # pragma: no cover - rows are locked, so this cannot race
                    continue
                self._event(
                    conn,
                    job_id,
                    "transition",
                    S(state),
                    S.RUNNING,
                    worker_id,
                    now,
                    step=Step.CLAIMED.value,
                )
                claimed.append(_row_to_job(row))
        return claimed

    @reconnecting
    def heartbeat(
        self,
        job_id: str,
        worker_id: str,
        *,
        lease_s: float = DEFAULT_LEASE_S,
        now: datetime | None = None,
    ) -> bool:
        """Extend a lease the worker still holds; False means the lease is gone: stop work."""
        now = now or self.clock()
        with self.engine.begin() as conn:
            res = conn.execute(
                update(jobs)
                .where(
                    jobs.c.job_id == job_id,
                    jobs.c.lease_owner == worker_id,
                    jobs.c.state.in_([s.value for s in LEASED_STATES]),
                )
                .values(lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now)
            )
            return res.rowcount == 1

    # ---------------------------------------------------------------- transitions
    @reconnecting
    def transition(
        self,
        job_id: str,
        to_state: SubmissionState,
        *,
        actor: str,
        expected_from: SubmissionState | Iterable[SubmissionState] | None = None,
        lease_owner: str | None = None,
        step: str | None = None,
        reason_code: ReasonCode | None = None,
        detail: dict[str, Any] | None = None,
        now: datetime | None = None,
        **fields: Any,
    ) -> Job:
        """Move a job to `to_state` as one atomic compare-and-set, appending its event.

        Raises IllegalTransition for a move the state machine forbids, StaleState when the job
        is not in `expected_from`, and LeaseLost when `lease_owner` no longer holds the lease.
        """
        unknown = set(fields) - _SETTABLE
        if unknown:
            raise TypeError(f"transition cannot set {sorted(unknown)}")
        now = now or self.clock()
        expected = _as_states(expected_from)

        def check(row: _Locked) -> None:
            self._check_caller(row, expected, lease_owner)
            check_transition(job_id, row.state, to_state)

        return self._apply(
            _Change(
                job_id=job_id,
                allowed=_allowed_from(to_state, expected, lease_owner is not None),
                lease_owner=lease_owner,
                check=check,
                values=self._transition_values(to_state, now, step, reason_code, fields),
                kind="transition",
                actor=actor,
                step=step,
                reason_code=reason_code,
                detail=detail,
                at=now,
            )
        )

    @reconnecting
    def record_milestone(
        self,
        job_id: str,
        worker_id: str,
        step: Step | str,
        *,
        lease_s: float | None = None,
        detail: dict[str, Any] | None = None,
        now: datetime | None = None,
        **fields: Any,
    ) -> Job:
        """Record that a leased job reached a step, so a dead worker leaves a truthful trail.

        Reaching the submit click sets `submit_attempted` for good: from then on no retry may
        submit without first looking the case up on the portal. Optionally extends the lease.
        """
        unknown = set(fields) - _SETTABLE
        if unknown:
            raise TypeError(f"record_milestone cannot set {sorted(unknown)}")
        now = now or self.clock()
        step = Step(step)
        values: dict[str, Any] = {"last_step": step.value, "updated_at": now, **fields}
        if step.reached_submit:
            values["submit_attempted"] = True
        if lease_s is not None:
            values["lease_expires_at"] = now + timedelta(seconds=lease_s)

        def check(row: _Locked) -> None:
            self._check_caller(row, LEASED_STATES, worker_id)

        return self._apply(
            _Change(
                job_id=job_id,
                allowed=LEASED_STATES,
                lease_owner=worker_id,
                check=check,
                values=values,
                kind="milestone",
                actor=worker_id,
                step=step.value,
                reason_code=None,
                detail=detail,
                at=now,
            )
        )

    @reconnecting
    def record_failure(
        self,
        job_id: str,
        failure: FailureObject,
        *,
        actor: str,
        lease_owner: str | None = None,
        policy: RetryPolicy | None = None,
        rng: Random | None = None,
        duration_s: float | None = None,
        now: datetime | None = None,
    ) -> tuple[Job, RoutingDecision]:
        """Route a failed attempt by its reason code and write the outcome atomically."""
        now = now or self.clock()
        policy = policy or self.policy
        rng = rng or Random()
        with self.engine.begin() as conn:
            job = self._locked(conn, job_id)
            self._check_caller(job, None, lease_owner)
            decision = route_failure(
                failure.reason_code, job.attempt, now, policy, rng, job.submit_attempted
            )
            failure = failure.model_copy(
                update={
                    "job_id": job.job_id,
                    "case_id": job.case_id,
                    "oem": job.oem,
                    "attempt": job.attempt,
                    "last_step": failure.last_step or job.last_step,
                }
            )
            check_transition(job_id, job.state, decision.next_state)
            values = self._transition_values(
                decision.next_state,
                now,
                None,
                failure.reason_code,
                {
                    "failure": failure.model_dump(mode="json"),
                    "next_attempt_at": decision.next_attempt_at,
                    "duration_s": duration_s if duration_s is not None else job.duration_s,
                },
            )
            row = self._cas(conn, job, values)
            self._event(
                conn,
                job_id,
                "transition",
                job.state,
                decision.next_state,
                actor,
                now,
                step=failure.last_step,
                reason_code=failure.reason_code,
                detail={"route": decision.route.value, "message": failure.message[:500]},
            )
            return row, decision

    @reconnecting
    def reap_expired(
        self,
        *,
        policy: RetryPolicy | None = None,
        actor: str = "reaper",
        now: datetime | None = None,
    ) -> list[Job]:
        """Take back jobs whose worker stopped heartbeating.

        A job that never reached the submit click goes back to the queue at once (its attempt
        still counts, so a job that keeps killing workers ends dead-lettered). A job that may
        have been submitted goes to reconciliation: only a portal lookup can tell.
        """
        now = now or self.clock()
        policy = policy or self.policy
        reaped: list[Job] = []
        pick = (
            select(jobs)
            .where(
                jobs.c.state.in_([s.value for s in LEASED_STATES]),
                jobs.c.lease_expires_at < now,
            )
            .with_for_update(skip_locked=True)
        )
        with self.engine.begin() as conn:
            for row in conn.execute(pick).all():
                job = _row_to_job(row)
                if job.submit_attempted or job.state is S.SUBMITTED:
                    to, reason = S.NEEDS_RECONCILIATION, ReasonCode.WORKER_LOST
                elif policy.may_retry(job.attempt):
                    to, reason = S.QUEUED, ReasonCode.WORKER_LOST
                else:
                    to, reason = S.DEAD_LETTERED, ReasonCode.WORKER_LOST
                failure = FailureObject.of(
                    reason,
                    f"lease of {job.lease_owner} expired at step {job.last_step}",
                    job_id=job.job_id,
                    case_id=job.case_id,
                    oem=job.oem,
                    attempt=job.attempt,
                    last_step=job.last_step,
                )
                values = self._transition_values(
                    to,
                    now,
                    None,
                    reason,
                    {"failure": failure.model_dump(mode="json"), "next_attempt_at": now},
                )
                reaped.append(self._cas(conn, job, values))
                self._event(
                    conn,
                    job.job_id,
                    "transition",
                    job.state,
                    to,
                    actor,
                    now,
                    step=job.last_step,
                    reason_code=reason,
                    detail={"lease_owner": job.lease_owner},
                )
        return reaped

    @reconnecting
    def mark_crm_synced(self, job_id: str, *, actor: str, now: datetime | None = None) -> Job:
        """Record that a terminal failure was posted to the CRM (the state does not change)."""
        now = now or self.clock()
        with self.engine.begin() as conn:
            job = self._locked(conn, job_id)
            if job.state not in (S.FAILED_TERMINAL, S.DEAD_LETTERED):
                raise StaleState(f"job {job_id} is {job.state}, not a terminal failure")
            row = self._cas(conn, job, {"crm_synced_at": now, "updated_at": now})
            self._event(
                conn,
                job_id,
                "milestone",
                job.state,
                job.state,
                actor,
                now,
                step=Step.CRM_UPDATED.value,
            )
            return row

    def dead_letter(
        self, job_id: str, failure: FailureObject, *, actor: str, now: datetime | None = None
    ) -> Job:
        """Park a job for a human with its reason (ops action or run-failure sensor)."""
        return self.transition(
            job_id,
            S.DEAD_LETTERED,
            actor=actor,
            reason_code=failure.reason_code,
            failure=failure.model_dump(mode="json"),
            now=now,
        )

    def redrive(self, job_id: str, *, actor: str, now: datetime | None = None) -> Job:
        """Put a dead-lettered job back in the queue with a fresh attempt budget."""
        now = now or self.clock()
        return self.transition(
            job_id,
            S.QUEUED,
            actor=actor,
            expected_from=S.DEAD_LETTERED,
            now=now,
            attempt=0,
            next_attempt_at=now,
        )

    # ---------------------------------------------------------------- helpers
    def _apply(self, change: _Change) -> Job:
        """Apply a checked compare-and-set and its event atomically; the job as it now stands."""
        if self._one_statement:
            params = {
                "lock_job_id": change.job_id,
                **_set_params(change.values),
                "ev_kind": change.kind,
                "ev_actor": change.actor,
                "ev_step": change.step,
                "ev_reason_code": str(change.reason_code) if change.reason_code else None,
                "ev_detail": change.detail or {},
                "ev_at": change.at,
            }
            if change.lease_owner is not None:
                params["lock_owner"] = change.lease_owner
            stmt = _pg_change_statement(
                tuple(sorted(change.values)), change.allowed, change.lease_owner is not None
            )
            with self._autocommit.connect() as conn:
                row = conn.execute(stmt, params).first()
            if row is None:
                raise JobNotFound(change.job_id)
            state, owner, version, job = row
            if job is None:  # the locked row failed the checks: nothing was written
                change.check(_Locked(change.job_id, S(state), owner, version))
                raise StaleState(f"job {change.job_id} changed underneath")  # pragma: no cover
            return _job_from_json(job)
        with self.engine.begin() as conn:
            locked = self._lock_for_checks(conn, change.job_id)
            change.check(locked)
            job = self._cas(conn, locked, change.values)
            self._event(
                conn,
                change.job_id,
                change.kind,
                locked.state,
                job.state,
                change.actor,
                change.at,
                step=change.step,
                reason_code=change.reason_code,
                detail=change.detail,
            )
            return job

    @staticmethod
    def _lock_for_checks(conn: Connection, job_id: str) -> _Locked:
        row = conn.execute(_LOCK_FOR_CHECKS, {"sel_job_id": job_id}).first()
        if row is None:
            raise JobNotFound(job_id)
        return _Locked(job_id, S(row.state), row.lease_owner, row.version)

    def _locked(self, conn: Connection, job_id: str) -> Job:
        row = conn.execute(_SELECT_JOB_FOR_UPDATE, {"sel_job_id": job_id}).first()
        if row is None:
            raise JobNotFound(job_id)
        return _row_to_job(row)

    @staticmethod
    def _check_caller(
        job: Job | _Locked,
        expected_from: SubmissionState | Iterable[SubmissionState] | None,
        lease_owner: str | None,
    ) -> None:
        if expected_from is not None:
            allowed = (
                {expected_from}
                if isinstance(expected_from, SubmissionState)
                else set(expected_from)
            )
            if job.state not in allowed:
                raise StaleState(f"job {job.job_id} is {job.state}, expected {sorted(allowed)}")
        if lease_owner is not None and (
            job.lease_owner != lease_owner or job.state not in LEASED_STATES
        ):
            raise LeaseLost(
                f"job {job.job_id} is {job.state} leased to {job.lease_owner}, not {lease_owner}"
            )

    @staticmethod
    def _transition_values(
        to_state: SubmissionState,
        now: datetime,
        step: str | None,
        reason_code: ReasonCode | None,
        fields: dict[str, Any],
    ) -> dict[str, Any]:
        values: dict[str, Any] = {"state": to_state.value, "updated_at": now, **fields}
        if reason_code is not None:
            values["reason_code"] = reason_code.value
        if step is not None:
            values["last_step"] = step
            if step in _STEP_VALUES and Step(step).reached_submit:
                values["submit_attempted"] = True
        if to_state not in LEASED_STATES:
            values["lease_owner"] = None
            values["lease_expires_at"] = None
        if to_state in TERMINAL_STATES:
            values["finished_at"] = now
            values.setdefault("next_attempt_at", None)
        if to_state in (S.RETRY_SCHEDULED, S.QUEUED, S.NEEDS_RECONCILIATION):
            values.setdefault("next_attempt_at", now)
        for k in ("failure", "evidence"):
            if isinstance(values.get(k), BaseModel):
                values[k] = values[k].model_dump(mode="json")
        return values

    @staticmethod
    def _cas(conn: Connection, job: Job | _Locked, values: dict[str, Any]) -> Job:
        res = conn.execute(
            _cas_statement(tuple(sorted(values))),
            {"cas_job_id": job.job_id, "cas_version": job.version, **_set_params(values)},
        )
        row = res.first()
        if row is None:  # pragma: no cover - the row is locked in this transaction
            raise StaleState(f"job {job.job_id} changed underneath")
        return _row_to_job(row)

    @staticmethod
    def _event(
        conn: Connection,
        job_id: str,
        kind: str,
        from_state: SubmissionState | None,
        to_state: SubmissionState,
        actor: str,
        now: datetime,
        *,
        step: str | None = None,
        reason_code: ReasonCode | str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        conn.execute(
            _INSERT_EVENT,
            {
                "job_id": job_id,
                "kind": kind,
                "from_state": from_state.value if from_state else None,
                "to_state": to_state.value,
                "actor": actor,
                "step": step,
                "reason_code": str(reason_code) if reason_code else None,
                "detail": detail or {},
                "at": now,
            },
        )

    # ---------------------------------------------------------------- step timings
    @reconnecting
    def record_step_timings(
        self,
        job_id: str,
        attempt: int,
        timings: Iterable[tuple[str, float, bool]],
        now: datetime | None = None,
    ) -> None:
        """Store how long each step of an attempt took (reports and budgets read them)."""
        now = now or self.clock()
        timings = list(timings)
        if not timings:
            return
        if self._one_statement:
            # One INSERT (of all the steps, from arrays) is atomic by itself: no BEGIN/COMMIT.
            steps, seconds, oks = (list(column) for column in zip(*timings, strict=True))
            params = {
                "st_job_id": job_id,
                "st_attempt": attempt,
                "st_at": now,
                "st_steps": steps,
                "st_seconds": seconds,
                "st_ok": oks,
            }
            with self._autocommit.connect() as conn:
                conn.execute(_PG_INSERT_STEPS, params)
            return
        rows = [
            {"job_id": job_id, "attempt": attempt, "step": s, "seconds": sec, "ok": ok, "at": now}
            for s, sec, ok in timings
        ]
        with self.engine.begin() as conn:
            conn.execute(insert(job_steps), rows)

    @reconnecting
    def step_timings(self, job_id: str | None = None) -> list[dict[str, Any]]:
        """Step timing rows, for one job or all."""
        q = select(job_steps).order_by(job_steps.c.id)
        if job_id is not None:
            q = q.where(job_steps.c.job_id == job_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    # ---------------------------------------------------------------- reads
    @reconnecting
    def get(self, job_id: str) -> Job:
        """One job by id."""
        with self.engine.connect() as conn:
            row = conn.execute(_SELECT_JOB, {"sel_job_id": job_id}).first()
        if row is None:
            raise JobNotFound(job_id)
        return _row_to_job(row)

    @reconnecting
    def list_jobs(
        self,
        *,
        oem: str | None = None,
        states: Iterable[SubmissionState] | None = None,
        run_id: str | None = None,
        updated_since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        """Jobs filtered by OEM, state, run and recency; newest update last."""
        q = select(jobs).order_by(jobs.c.updated_at, jobs.c.job_id)
        if oem is not None:
            q = q.where(jobs.c.oem == oem)
        if states is not None:
            q = q.where(jobs.c.state.in_([S(s).value for s in states]))
        if run_id is not None:
            q = q.where(jobs.c.run_id == run_id)
        if updated_since is not None:
            q = q.where(jobs.c.updated_at >= updated_since)
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [_row_to_job(r) for r in conn.execute(q)]

    @reconnecting
    def events(self, job_id: str | None = None) -> list[JobEvent]:
        """The append-only history, for one job or all, in order."""
        q = select(job_events).order_by(job_events.c.event_id)
        if job_id is not None:
            q = q.where(job_events.c.job_id == job_id)
        with self.engine.connect() as conn:
            out = []
            for r in conn.execute(q):
                m = dict(r._mapping)
                m["at"] = _aware(m["at"])
                m["detail"] = m.get("detail") or {}
                out.append(JobEvent.model_validate(m))
            return out

    @reconnecting
    def stats(
        self, *, oem: str | None = None, now: datetime | None = None, window: int = 1000
    ) -> QueueStats:
        """Depth per OEM and state, queue age, and p50/p95 job time over the last `window` jobs."""
        now = now or self.clock()
        claimable = [s.value for s in CLAIMABLE_STATES]
        with self.engine.connect() as conn:
            q = select(jobs.c.oem, jobs.c.state, func.count()).group_by(jobs.c.oem, jobs.c.state)
            due_q = select(func.count(), func.min(jobs.c.next_attempt_at)).where(
                jobs.c.state.in_(claimable), jobs.c.next_attempt_at <= now
            )
            dur_q = (
                select(jobs.c.duration_s)
                .where(jobs.c.duration_s.is_not(None))
                .order_by(jobs.c.finished_at.desc())
                .limit(window)
            )
            if oem is not None:
                q, due_q, dur_q = (x.where(jobs.c.oem == oem) for x in (q, due_q, dur_q))
            depth: dict[str, dict[str, int]] = {}
            for o, st, n in conn.execute(q):
                depth.setdefault(o, {})[st] = n
            due, oldest = conn.execute(due_q).one()
            durations = [d for (d,) in conn.execute(dur_q)]
        oldest = _aware(oldest)
        running = sum(
            d.get(S.RUNNING.value, 0) + d.get(S.SUBMITTED.value, 0) for d in depth.values()
        )
        return QueueStats(
            depth=depth,
            due_now=due,
            oldest_due_age_s=(now - oldest).total_seconds() if oldest else None,
            running=running,
            p50_job_s=percentile(durations, 50),
            p95_job_s=percentile(durations, 95),
            finished_jobs_measured=len(durations),
        )
