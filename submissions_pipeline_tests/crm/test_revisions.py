"""A case entered again with other content is a new revision the feed hands out again, never a
silent no-op; a revision that came too late is flagged until a person settles it."""

from __future__ import annotations

from submissions_pipeline.crm import ChangedAfterSubmission, CrmStatus, CrmUpdate, EmbeddedCrm
from submissions_pipeline_tests.factories import VALID_VINS, case_record


def _feed(crm: EmbeddedCrm, cursor: str | None = None) -> list[tuple[str, int]]:
    return [(r.case_id, r.revision) for r in crm.list_new_cases("northwind", cursor).records]


def _in_progress(case_id: str, revision: int | None = None) -> CrmUpdate:
    return CrmUpdate(
        case_id=case_id, job_id="job-1", status=CrmStatus.IN_PROGRESS, revision=revision
    )


def _flag(revision: int) -> ChangedAfterSubmission:
    return ChangedAfterSubmission(
        revision=revision,
        job_id="job-1",
        job_state="crm_updated",
        message="changed after submission",
        fields={"vin": "changed after submission: the portal has the earlier value"},
    )


def test_other_content_under_an_existing_id_is_a_new_revision_back_in_the_feed(
    crm: EmbeddedCrm, clock
):
    crm.add_case(case_record(1))
    crm.add_case(case_record(2))
    cursor = crm.list_new_cases("northwind", None).next_cursor
    crm.write_back(_in_progress("CASE-00001", revision=1))
    first = crm.get_case("CASE-00001")
    clock.advance(60)

    new_raw = case_record(1, vin=VALID_VINS[3])
    assert crm.add_case(new_raw) == "CASE-00001"

    case = crm.get_case("CASE-00001")
    assert case.raw == new_raw and case.revision == 2 and case.changed
    assert case.status is CrmStatus.IN_PROGRESS  # the status is intake's to decide
    assert case.sequence > crm.get_case("CASE-00002").sequence  # moved to the end of the feed
    assert _feed(crm, cursor) == [("CASE-00001", 2)]
    revised = crm.history("CASE-00001")[-1]
    assert (revised.kind, revised.actor, revised.at) == ("case_revised", "crm", clock.now)
    assert revised.changes["raw"] == {"from": first.raw, "to": new_raw}
    assert revised.changes["revision"] == {"from": 1, "to": 2}

    assert crm.add_case(new_raw) == "CASE-00001"  # the same revision again: nothing
    assert crm.get_case("CASE-00001") == case


def test_only_an_answer_for_the_newest_revision_takes_a_case_out_of_the_feed(crm: EmbeddedCrm):
    crm.add_case(case_record(1))
    crm.write_back(_in_progress("CASE-00001", revision=1))
    crm.add_case(case_record(1, vin=VALID_VINS[3]))
    crm.add_case(case_record(1, vin=VALID_VINS[4]))  # revision 3 before intake read 2

    outcome = CrmUpdate(
        case_id="CASE-00001", job_id="job-1", status=CrmStatus.SUBMITTED, reference="NW-1"
    )
    crm.write_back(outcome)  # an outcome write-back answers for no revision
    assert _feed(crm) == [("CASE-00001", 3)]
    crm.write_back(outcome.model_copy(update={"revision": 2}))  # a stale answer
    assert _feed(crm) == [("CASE-00001", 3)]
    crm.write_back(outcome.model_copy(update={"revision": 3}))
    assert _feed(crm) == [] and not crm.get_case("CASE-00001").changed


def test_a_flagged_case_reads_needs_attention_whatever_outcome_follows(crm: EmbeddedCrm):
    crm.add_case(case_record(1))
    crm.write_back(_in_progress("CASE-00001", revision=1))
    crm.add_case(case_record(1, vin=VALID_VINS[3]))

    assert crm.flag_changed_after_submission("CASE-00001", _flag(2)) is True
    assert crm.flag_changed_after_submission("CASE-00001", _flag(2)) is False
    case = crm.get_case("CASE-00001")
    assert case.status is CrmStatus.NEEDS_ATTENTION and not case.changed
    assert case.changed_after_submission == _flag(2)
    assert crm.history("CASE-00001")[-1].kind == "changed_after_submission"

    submitted = CrmUpdate(
        case_id="CASE-00001",
        job_id="job-1",
        status=CrmStatus.SUBMITTED,
        reference="NW-2026-000001",
        submitted_by_automation=True,
    )
    assert crm.write_back(submitted) is True
    case = crm.get_case("CASE-00001")
    assert case.status is CrmStatus.NEEDS_ATTENTION and case.reference == "NW-2026-000001"
    assert case.submitted_by_automation and case.changed_after_submission == _flag(2)

    # A person amends the claim on the portal and records the submission that stands.
    assert crm.record_human_submission("CASE-00001", "NW-2026-000002", by="m.jensen")
    case = crm.get_case("CASE-00001")
    assert case.status is CrmStatus.HUMAN_SUBMITTED and case.changed_after_submission is None


def test_a_case_a_person_submitted_keeps_its_status_beside_the_flag(crm: EmbeddedCrm):
    crm.add_case(case_record(1))
    crm.record_human_submission("CASE-00001", "NW-2026-000777", by="m.jensen")
    crm.add_case(case_record(1, vin=VALID_VINS[3]))
    assert _feed(crm) == [("CASE-00001", 2)]

    crm.flag_changed_after_submission("CASE-00001", _flag(2))

    case = crm.get_case("CASE-00001")
    assert case.status is CrmStatus.HUMAN_SUBMITTED and case.changed_after_submission
    assert _feed(crm) == []


def test_resetting_a_test_record_twice_in_a_row_moves_it_once(crm: EmbeddedCrm):
    crm.add_case(case_record(1, test_record=True))
    crm.write_back(_in_progress("CASE-00001"))
    first = crm.reset_test_record("CASE-00001")
    assert crm.reset_test_record("CASE-00001") == first  # e.g. re-run after a lost commit ack
    assert [h.kind for h in crm.history("CASE-00001")] == ["write_back", "test_record_reset"]
