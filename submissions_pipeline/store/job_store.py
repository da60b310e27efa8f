"""The job store and global queue: the one source of truth for every submission job, by job_id.

All SQL that reads or writes jobs lives in this package. State changes go through `transition`
(or the claim/reap paths built on the same compare-and-set), each appending its event in the
same transaction, so the event history always equals the transitions made. On PostgreSQL a
claim, milestone or transition is one statement (lock, check, update and event together, see
`statements._pg_change_statement`): the worker's hot path costs one round trip per change.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from random import Random
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from submissions_pipeline.domain import (
    Case,
    FailureObject,
    Job,
    ReasonCode,
    ReconciliationPolicy,
    RetryPolicy,
    RoutingDecision,
    Step,
    SubmissionState,
    check_transition,
    route_failure,
)
from submissions_pipeline.domain.clock import Clock, utcnow
from submissions_pipeline.domain.fleet import ConcurrencyCaps
from submissions_pipeline.domain.states import LEASED_STATES
from submissions_pipeline.store import migrate
from submissions_pipeline.store.api_requests import ApiRequestLog
from submissions_pipeline.store.engine import make_engine
from submissions_pipeline.store.fleet import FleetQueue
from submissions_pipeline.store.golive import GoLiveStates
from submissions_pipeline.store.lockouts import SignInLockouts
from submissions_pipeline.store.models import (
    EnqueueResult,
    _Change,
    _job_from_json,
    _Locked,
    _row_to_job,
)
from submissions_pipeline.store.operator import OperatorActions
from submissions_pipeline.store.outbox import WebhookOutbox
from submissions_pipeline.store.reads import JobReads
from submissions_pipeline.store.reconnect import reconnecting
from submissions_pipeline.store.schema import job_steps, jobs
from submissions_pipeline.store.statements import (
    _PG_INSERT_STEPS,
    _SETTABLE,
    _allowed_from,
    _as_states,
    _pg_claim_statement,
)
from submissions_pipeline.store.writes import JobWrites

S = SubmissionState

#: Milestones that move a counter in SQL (see statements._counter_values).
_MILESTONE_COUNTERS = {
    Step.SUBMIT_CLICKED: "submit_click",
    Step.LOOKUP_MISSED: "lookup_miss",
    Step.ABSENCE_PROVEN: "absence_proven",
}

#: Default lease a claim grants; workers heartbeat well inside it.
DEFAULT_LEASE_S = 300.0


class JobStore(
    JobReads,
    OperatorActions,
    FleetQueue,
    JobWrites,
    WebhookOutbox,
    ApiRequestLog,
    GoLiveStates,
    SignInLockouts,
):
    """Jobs, their events, and the pull queue, on SQLite or PostgreSQL.

    The commands are here; the queries come from `JobReads`, the write steps from `JobWrites`.
    Every operation re-runs on a dropped connection (`reconnecting`), which is safe because each
    is one transaction: compare-and-set transitions refuse to apply twice, claims of a commit
    whose acknowledgement was lost expire and are reaped, enqueue is idempotent.
    """

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
                        due_at=case.due_date,
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
        caps: Mapping[str, ConcurrencyCaps] | None = None,
        now: datetime | None = None,
    ) -> list[Job]:
        """Lease up to `limit` due jobs: by priority, then earliest due date, then oldest due.

        `prefer_redaction_sensitive` puts redaction-sensitive cases ahead of everything else (a
        batch parameter ops set from the launchpad); `exclude_oems` skips OEMs whose batch halted.

        PostgreSQL locks the picked rows with ``FOR UPDATE SKIP LOCKED`` so concurrent claimers
        pass each other by; SQLite serialises writers with ``BEGIN IMMEDIATE`` (see engine.py),
        which gives the same guarantee. Each claim starts a new attempt. OEMs with fleet-wide
        `caps` take the serialised capped path (`FleetQueue`).
        """
        if limit <= 0:
            return []
        now = now or self.clock()
        capped = {k: c for k, c in (caps or {}).items() if c.capped and oem in (None, k)}
        if capped:
            return self._claim_capped(
                worker_id,
                oem,
                limit,
                lease_s,
                run_id,
                exclude_oems,
                capped,
                now,
                prefer_redaction_sensitive,
            )
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
        return self._claim_portable(
            worker_id, oem, limit, lease_s, run_id, exclude_oems, prefer_redaction_sensitive, now
        )

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
        if fields.get("reference"):
            # Every reference a job was ever given stays in its history (the audit reads it).
            detail = {**(detail or {}), "reference": fields["reference"]}

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
        counter = _MILESTONE_COUNTERS.get(step)

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
                counter=counter,
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
        reconciliation: ReconciliationPolicy | None = None,
        now: datetime | None = None,
    ) -> tuple[Job, RoutingDecision]:
        """Route a failed attempt by its reason code and write the outcome atomically.

        `reconciliation` is the OEM's policy for proving a submission absent (its default when
        None); it decides when a job that may be on the portal is looked up again, and when a
        person must decide instead.
        """
        now = now or self.clock()
        policy = policy or self.policy
        rng = rng or Random()
        with self.engine.begin() as conn:
            job = self._locked(conn, job_id)
            self._check_caller(job, None, lease_owner)
            decision = route_failure(failure.reason_code, job, now, policy, rng, reconciliation)
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
        run_id: str | None = None,
        lease_owner: str | None = None,
        now: datetime | None = None,
    ) -> list[Job]:
        """Take back jobs whose worker stopped heartbeating (or, with `run_id` or `lease_owner`,
        every job still leased to that run or worker: one known to be dead or draining need not
        wait for expiry).

        A job that never reached the submit click goes back to the queue at once (its try
        still counts, so a job that keeps killing workers ends dead-lettered). A job that may
        have been submitted goes to reconciliation: only a portal lookup can tell.
        """
        now = now or self.clock()
        policy = policy or self.policy
        reaped: list[Job] = []
        leased = jobs.c.state.in_([s.value for s in LEASED_STATES])
        gone = jobs.c.run_id == run_id if run_id is not None else jobs.c.lease_expires_at < now
        if lease_owner is not None:
            gone = jobs.c.lease_owner == lease_owner
        pick = select(jobs).where(leased, gone).with_for_update(skip_locked=True)
        with self.engine.begin() as conn:
            for row in conn.execute(pick).all():
                job = _row_to_job(row)
                if job.submit_attempted or job.state is S.SUBMITTED:
                    to, reason = S.NEEDS_RECONCILIATION, ReasonCode.WORKER_LOST
                elif policy.may_retry(job.tries):
                    to, reason = S.QUEUED, ReasonCode.WORKER_LOST
                else:
                    to, reason = S.DEAD_LETTERED, ReasonCode.WORKER_LOST
                failure = FailureObject.of(
                    reason,
                    f"lease of {job.lease_owner} "
                    f"{'given back' if lease_owner else 'expired'} at step {job.last_step}",
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

    # ---------------------------------------------------------------- case revisions
    @reconnecting
    def revise_case(self, case: Case, *, actor: str, now: datetime | None = None) -> Job | None:
        """Give the job standing for a case the case's new version, while it may still change.

        A compare-and-set under the row lock that appends a `revision` event, like every change.
        Returns None when no job stands for the case (enqueue it: the new version is new work);
        the job carrying the new version when it was replaced (or already carried it; a new due
        date alone is taken while the job is queued or scheduled for retry); and the
        job unchanged when it is leased, reached the submit click, or may be on the portal: the
        caller must flag that case for a human, never resubmit it. Safe to re-run: a second run
        finds the new version in place.
        """
        from submissions_pipeline.store.revisions import (
            REVISABLE_STATES,
            may_take,
            revision_values,
            standing_job,
        )

        now = now or self.clock()
        key = case.idempotency_key()
        with self.engine.begin() as conn:
            job = standing_job(conn, case.case_id)
            if job is not None and job.idempotency_key == key:
                if job.due_at == case.due_date or job.state not in REVISABLE_STATES:
                    return job
                # Only the due date moved: the same work, but the claim order follows it.
                moved = self._cas(conn, job, {"due_at": case.due_date, "updated_at": now})
                detail = {"fields": ["due_date"]}
                self._event(
                    conn, job.job_id, "revision", job.state, job.state, actor, now, detail=detail
                )
                return moved
            if job is None or not may_take(conn, job, case):
                return job
            revised = self._cas(conn, job, revision_values(case, now))
            self._event(
                conn,
                job.job_id,
                "revision",
                job.state,
                job.state,
                actor,
                now,
                detail={
                    "from_key": job.idempotency_key,
                    "to_key": key,
                    "fields": job.case().changed_fields(case),
                },
            )
            return revised
