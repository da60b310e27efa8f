"""The console's job search, answered by the store in SQL: every filter on SQLite and
PostgreSQL alike, newest update first, one page at a time with the total beside it."""

from __future__ import annotations

from datetime import UTC, datetime

from submissions_pipeline.domain import FailureObject, ReasonCode, SubmissionState
from submissions_pipeline.store import JobSearch, JobStore
from submissions_pipeline_tests.conftest import ManualClock
from submissions_pipeline_tests.factories import make_case

S = SubmissionState


def _night(store: JobStore, clock: ManualClock) -> dict[str, str]:
    """Four jobs of two OEMs over two days: a dead letter, an automated submission, a hand
    submission and one still queued."""
    clock.now = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
    ids = {}
    ids["dead"] = store.enqueue(make_case(1)).job_id
    failure = FailureObject.of(ReasonCode.SELECTOR_NOT_FOUND, "label renamed")
    store.dead_letter(ids["dead"], failure, actor="w1")

    clock.advance(3600)  # the next day (UTC)
    ids["auto"] = store.enqueue(make_case(2, oem="harbor")).job_id
    (claimed,) = store.claim("w1", oem="harbor", limit=1)
    store.transition(
        claimed.job_id,
        S.SUBMITTED,
        actor="w1",
        lease_owner="w1",
        reference="HB-77ab",
        submitted_by_automation=True,
    )
    store.transition(claimed.job_id, S.EVIDENCE_STORED, actor="w1", lease_owner="w1")
    store.transition(claimed.job_id, S.CRM_UPDATED, actor="crm")

    clock.advance(60)
    ids["hand"] = store.enqueue(make_case(3)).job_id
    outage = FailureObject.of(ReasonCode.SITE_HTTP_5XX, "portal answered HTTP 503")
    store.dead_letter(ids["hand"], outage, actor="w1")
    store.review_submitted_by_hand(ids["hand"], reference="NW-HAND-1", actor="console:ops")

    clock.advance(60)
    ids["queued"] = store.enqueue(make_case(4)).job_id
    return ids


def _found(store: JobStore, **search: str) -> list[str]:
    jobs, total = store.find_jobs(JobSearch(**search))
    assert total == len(jobs)
    return [j.job_id for j in jobs]


def test_each_filter_finds_exactly_its_jobs_newest_first(store: JobStore, clock: ManualClock):
    ids = _night(store, clock)
    name = {v: k for k, v in ids.items()}

    def found(**search: str) -> list[str]:
        return [name[i] for i in _found(store, **search)]

    assert found() == ["queued", "hand", "auto", "dead"]
    assert found(oem="northwind") == ["queued", "hand", "dead"]
    assert found(state="dead_lettered") == ["dead"]
    assert found(reason="selector_not_found") == ["dead"]
    assert found(error_class=ReasonCode.SELECTOR_NOT_FOUND.error_class.value) == ["dead"]
    assert found(updated_on="2026-11-29") == ["dead"]
    assert found(updated_on="2026-11-30") == ["queued", "hand", "auto"]
    assert found(updated_on="30 Nov") == []  # not a date: nothing, not everything
    assert found(by="automation") == ["auto"]
    assert found(by="human") == ["hand"]
    assert found(text="hb-77") == ["auto"]  # the portal's reference, in any case
    assert found(text=make_case(3).case_id.lower()) == ["hand"]
    assert found(text=make_case(4).vin[-6:]) == ["queued"]
    assert found(text=ids["dead"][:10]) == ["dead"]
    assert found(text="%") == [] and found(text="_") == []  # wildcards are text
    assert found(oem="northwind", state="crm_updated", by="human") == ["hand"]
    assert found(state="no_such_state") == []


def test_pages_are_cut_in_the_database_with_the_total_beside_them(
    store: JobStore, clock: ManualClock
):
    clock.now = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    ids = []
    for n in range(1, 8):
        ids.append(store.enqueue(make_case(n)).job_id)
        clock.advance(1)
    newest_first = ids[::-1]

    pages = [store.find_jobs(JobSearch(oem="northwind"), offset=o, limit=3) for o in (0, 3, 6)]

    assert [[j.job_id for j in jobs] for jobs, _ in pages] == [
        newest_first[:3],
        newest_first[3:6],
        newest_first[6:],
    ]
    assert {total for _, total in pages} == {7}
    assert store.find_jobs(JobSearch(oem="northwind"), offset=9, limit=3) == ([], 7)
