"""The write steps `JobStore`'s commands are built from: lock, check, compare-and-set, event."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, func, update

from submissions_pipeline.domain import (
    TERMINAL_STATES,
    Job,
    ReasonCode,
    Step,
    SubmissionState,
)
from submissions_pipeline.domain.states import LEASED_STATES
from submissions_pipeline.store.errors import JobNotFound, LeaseLost, StaleState
from submissions_pipeline.store.models import _Change, _job_from_json, _Locked, _row_to_job
from submissions_pipeline.store.schema import jobs
from submissions_pipeline.store.statements import (
    _INSERT_EVENT,
    _LOCK_FOR_CHECKS,
    _OUTBOX_FROM_JOB,
    _SELECT_JOB_FOR_UPDATE,
    CLAIM_COUNTERS,
    NOTIFYING_STATES,
    _cas_statement,
    _pg_change_statement,
    _set_params,
    claimable_select,
)

S = SubmissionState

_STEP_VALUES = frozenset(s.value for s in Step)


class JobWrites:
    """Each change to a job as one atomic compare-and-set plus its event, on either backend.

    PostgreSQL applies a change as one statement in autocommit; SQLite (the portable path) locks
    the row, checks it and writes in one transaction. The commands in `JobStore` only say what
    changes; these methods make sure it happens once, to the row the caller checked.
    """

    engine: Engine
    _one_statement: bool
    _autocommit: Engine

    def _claim_portable(
        self,
        worker_id: str,
        oem: str | None,
        limit: int,
        lease_s: float,
        run_id: str | None,
        exclude_oems: Iterable[str],
        prefer_redaction_sensitive: bool,
        now: datetime,
    ) -> list[Job]:
        """Pick, lease and log due jobs in one transaction (the claim without PostgreSQL)."""
        pick = (
            claimable_select(
                (jobs.c.job_id, jobs.c.state, jobs.c.version),
                oem=oem,
                exclude_oems=exclude_oems,
                prefer_redaction_sensitive=prefer_redaction_sensitive,
                now=now,
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self.engine.begin() as conn:
            return self._lease_picked(
                conn, conn.execute(pick).all(), worker_id, lease_s, run_id, now
            )

    def _lease_picked(
        self,
        conn: Connection,
        picked: Iterable[Any],
        worker_id: str,
        lease_s: float,
        run_id: str | None,
        now: datetime,
    ) -> list[Job]:
        """Lease rows (job_id, state, version) picked and locked in `conn`'s transaction."""
        claimed: list[Job] = []
        for job_id, state, version in picked:
            result = conn.execute(
                update(jobs)
                .where(jobs.c.job_id == job_id, jobs.c.version == version)
                .values(
                    state=S.RUNNING.value,
                    lease_owner=worker_id,
                    lease_expires_at=now + timedelta(seconds=lease_s),
                    attempt=jobs.c.attempt + 1,
                    **CLAIM_COUNTERS,
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
                tuple(sorted(change.values)),
                change.allowed,
                change.lease_owner is not None,
                change.counter,
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
            job = self._cas(conn, locked, change.values, change.counter)
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
        if to_state is S.NEEDS_REVIEW:
            values.setdefault("crm_synced_at", None)  # each review is posted to the CRM anew
        if to_state in (S.RETRY_SCHEDULED, S.QUEUED, S.NEEDS_RECONCILIATION):
            values.setdefault("next_attempt_at", now)
        for k in ("failure", "evidence"):
            if isinstance(values.get(k), BaseModel):
                values[k] = values[k].model_dump(mode="json")
        return values

    @staticmethod
    def _cas(
        conn: Connection, job: Job | _Locked, values: dict[str, Any], counter: str | None = None
    ) -> Job:
        res = conn.execute(
            _cas_statement(tuple(sorted(values)), counter),
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
        if kind == "transition" and to_state in NOTIFYING_STATES and from_state is not to_state:
            # Same transaction as the change: the notification exists iff the change commits.
            conn.execute(_OUTBOX_FROM_JOB, {"ob_job_id": job_id, "ob_at": now})
