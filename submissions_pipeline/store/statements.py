"""The store's hot-path SQL, built once: cached statements, PostgreSQL one-statement writes."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    Select,
    String,
    all_,
    and_,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    true,
    update,
)

from submissions_pipeline.domain import CLAIMABLE_STATES, Step, SubmissionState
from submissions_pipeline.domain.states import LEASED_STATES, is_legal
from submissions_pipeline.store.schema import job_events, job_steps, jobs, webhook_events

S = SubmissionState

#: The whole updated row as one JSON value: psycopg and SQLAlchemy spend more Python on a
#: 31-column result than pydantic spends validating the same row from one JSON document.
_JOB_AS_JSON = func.row_to_json(jobs.table_valued(), type_=jobs.c.payload.type).label("job")

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

#: States whose arrival is a notification: the outbox row is written by the same statement or
#: transaction as the change, so the event exists if and only if the change committed.
NOTIFYING_STATES = frozenset({S.SUBMITTED, S.NEEDS_REVIEW, S.FAILED_TERMINAL, S.DEAD_LETTERED})
_OUTBOX_COLUMNS = (
    "event_id",
    "event_type",
    "oem",
    "job_id",
    "case_id",
    "state",
    "reason_code",
    "reference",
    "failure",
    "attempt",
    "occurred_at",
)


def _outbox_select(src: Any, at: Any) -> Select[Any]:
    """The outbox row of a job change, read from the changed row `src`: the event id is the job
    and its new version (unique per change, the same if the statement ran twice)."""
    return select(
        literal("job-", String) + src.c.job_id + literal(".", String) + cast(src.c.version, String),
        literal("job.", String) + src.c.state,
        src.c.oem,
        src.c.job_id,
        src.c.case_id,
        src.c.state,
        src.c.reason_code,
        src.c.reference,
        src.c.failure,
        src.c.attempt,
        at,
    )


#: The portable path's outbox write: from the job row the same transaction just changed.
_OUTBOX_FROM_JOB = insert(webhook_events).from_select(
    _OUTBOX_COLUMNS,
    _outbox_select(jobs, bindparam("ob_at", type_=webhook_events.c.occurred_at.type)).where(
        jobs.c.job_id == bindparam("ob_job_id", type_=String)
    ),
)
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


def _counter_values(counter: str | None) -> dict[str, Any]:
    """Columns a change computes from the row itself: a counter must count what the row holds,
    never a copy a worker read earlier. The change's own time is its bound `updated_at`."""
    if counter is None:
        return {}
    at = bindparam("set_updated_at", type_=jobs.c.updated_at.type)
    if counter == "submit_click":
        # A new click restarts the proof of absence: misses before it say nothing about it.
        return {
            "submit_clicks": jobs.c.submit_clicks + 1,
            "last_submit_at": at,
            "lookup_misses": 0,
            "first_miss_at": null(),
            "last_miss_at": null(),
        }
    if counter == "lookup_miss":
        return {
            "lookup_misses": jobs.c.lookup_misses + 1,
            "first_miss_at": func.coalesce(jobs.c.first_miss_at, at),
            "last_miss_at": at,
        }
    if counter == "absence_proven":
        return {"tries": jobs.c.tries + 1}  # the lookup claim goes on to submit: a try
    raise ValueError(f"unknown counter {counter!r}")


#: The claim's budget counters: a claim of a job that may be on the portal is a lookup, any
#: other claim a try.
CLAIM_COUNTERS = {
    "tries": jobs.c.tries + case((jobs.c.submit_attempted, 0), else_=1),
    "lookup_claims": jobs.c.lookup_claims + case((jobs.c.submit_attempted, 1), else_=0),
}


@functools.lru_cache(maxsize=256)
def _cas_statement(keys: tuple[str, ...], counter: str | None = None) -> Any:
    """UPDATE guarded by the version read under the lock, returning the new row."""
    return (
        update(jobs)
        .where(jobs.c.job_id == bindparam("cas_job_id"), jobs.c.version == bindparam("cas_version"))
        .values(version=jobs.c.version + 1, **_set_clause(keys), **_counter_values(counter))
        .returning(*jobs.c)
    )


#: What a one-statement change returns beside the row's JSON: the outbox row's columns.
_OUTBOX_SOURCE = (
    jobs.c.job_id,
    jobs.c.state,
    jobs.c.version,
    jobs.c.oem,
    jobs.c.case_id,
    jobs.c.reason_code,
    jobs.c.reference,
    jobs.c.failure,
    jobs.c.attempt,
)


@functools.lru_cache(maxsize=256)
def _pg_change_statement(
    keys: tuple[str, ...],
    allowed: frozenset[SubmissionState],
    lease_checked: bool,
    counter: str | None = None,
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
        .values(version=jobs.c.version + 1, **_set_clause(keys), **_counter_values(counter))
        .returning(*_OUTBOX_SOURCE, _JOB_AS_JSON)
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
    result = (
        select(
            locked.c.state.label("locked_state"),
            locked.c.lease_owner.label("locked_owner"),
            locked.c.version.label("locked_version"),
            changed.c.job,
        )
        .select_from(locked.outerjoin(changed, true()))
        .add_cte(event)
    )
    if "state" not in keys:
        return result  # a milestone never changes the state: nothing to notify
    outbox = (
        insert(webhook_events)
        .from_select(
            _OUTBOX_COLUMNS,
            _outbox_select(changed, bindparam("ev_at", type_=webhook_events.c.occurred_at.type))
            .select_from(changed.join(locked, true()))
            .where(
                changed.c.state.in_(_inline_states(NOTIFYING_STATES)),
                changed.c.state != locked.c.state,
            ),
        )
        .cte("outbox")
    )
    return result.add_cte(outbox)


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
    # Priority, then the earliest due date (undated jobs after every dated one; NULLS LAST is
    # spelled out because SQLite sorts NULL first), then age.
    order = [t.c.priority.desc(), t.c.due_at.asc().nulls_last(), t.c.next_attempt_at]
    order.append(t.c.created_at)
    if prefer_redaction_sensitive:
        order.insert(0, t.c.redaction_sensitive.desc())
    return order


def claimable_select(
    columns: Iterable[Any],
    *,
    oem: str | None,
    exclude_oems: Iterable[str],
    prefer_redaction_sensitive: bool,
    now: datetime,
) -> Select[Any]:
    """Due, claimable jobs in claim order: what every portable claim path picks from, so the
    plain and the capped claim can never disagree on which job is next."""
    conds = [
        jobs.c.state.in_([s.value for s in CLAIMABLE_STATES]),
        jobs.c.next_attempt_at <= now,
    ]
    if oem is not None:
        conds.append(jobs.c.oem == oem)
    excluded = list(exclude_oems)
    if excluded:
        conds.append(jobs.c.oem.not_in(excluded))
    return (
        select(*columns)
        .where(and_(*conds))
        .order_by(*_claim_order(jobs, prefer_redaction_sensitive))
    )


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
            **CLAIM_COUNTERS,
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
            jobs.c.due_at,
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
