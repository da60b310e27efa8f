"""The soak harness end to end at a small N: real pipeline, faulty portals, judged report; and
its outcome checks, each shown to catch what it is there for."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime

from bench.soak import LaggingPortal, SoakConfig, run_soak
from bench.soak_checks import check_ledgers, find_stuck, scan_for_secrets
from sandbox.ledger import LedgerEntry
from submissions_pipeline.crm import CrmStatus, EmbeddedCrm
from submissions_pipeline.domain import SubmissionState
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.factories import VALID_VINS, case_record


def test_small_soak_settles_every_case_once_and_reports(tmp_path):
    """With a lagging portal whose every submit is ambiguous, id twins and a short password."""
    out = tmp_path / "soak"
    lagging = LaggingPortal(oem="kestrel", search_lag_s=3600, drop_after_submit_rate=1.0)
    cfg = SoakConfig(
        jobs=12,
        invalid_share=0.3,
        out_dir=out,
        retry_time_scale=0.002,
        lagging_portal=lagging,
        id_twins=2,
    )
    report = run_soak(cfg, echo=lambda _line: None)

    assert report.cases == 12 + 2 and report.jobs == report.cases - report.invalid_cases
    assert report.invalid_cases >= 3  # the seeded mistakes and both twins came back invalid
    assert report.duplicates == 0 and report.orphans == 0 and report.unsettled == 0
    assert report.wrong_submissions == [] and report.stuck == []
    assert report.crm_mismatches == [] and report.secrets.hits == []
    assert report.secrets.files_scanned > 20 and report.secrets.short_secrets == 1
    # Every kestrel submit was ambiguous and its lookup lags: a person decides, not a failure.
    assert report.needs_review >= 1 and len(report.needs_review_ids) == report.needs_review
    assert report.states.get("needs_review") == report.needs_review
    assert report.p95_job_s is not None and report.p95_job_s < 300
    assert sum(report.states.values()) == report.jobs
    assert report.passed, report.problems
    saved = json.loads((out / "report.json").read_text())
    assert saved["jobs"] == report.jobs and (out / "chart.png").stat().st_size > 1000
    assert {"duplicates", "wrong_submissions", "stuck", "needs_review", "secrets"} <= set(saved)

    db = f"sqlite:///{out / 'home' / 'submissions.db'}"
    crm = EmbeddedCrm.from_url(db, migrate_schema=False)
    cases = crm.list_cases()
    crm.dispose()
    twins = [c for c in cases if c.case_id != c.case_id.strip()]
    assert len(twins) == 2 and all(c.status is CrmStatus.INVALID_DATA for c in twins)
    assert all("whitespace" in c.field_errors["case_id"] for c in twins)
    assert sum(c.revision == 2 for c in cases) == 2  # re-entered ids: judged on the new content
    # The short password is the one the portal and the runs used: its dealer's jobs got through.
    oem, dealer = report.short_password_dealer.split("/")
    creds = json.loads((out / "home" / "sandbox-credentials.json").read_text())
    assert creds[oem][dealer]["password"] == cfg.short_password
    store = JobStore.from_url(db, migrate_schema=False)
    states = {j.state for j in store.list_jobs() if (j.oem, j.dealer_id) == (oem, dealer)}
    store.dispose()
    assert SubmissionState.CRM_UPDATED in states


def _entry(oem: str, case_id: str, vin: str) -> dict:
    at = datetime.now(UTC)
    return LedgerEntry(
        oem=oem,
        case_id=case_id,
        vin=vin,
        dealer_id="D1001",
        reference="R-1",
        received_at=at,
        payload={},
        ui_version="v1",
    ).model_dump(mode="json")


def test_the_ledger_check_finds_duplicates_other_cases_data_and_unknown_cases(sqlite_url):
    crm = EmbeddedCrm.from_url(sqlite_url)
    crm.add_case(case_record(1, case_id="A-1", vin=VALID_VINS[0]))
    crm.add_case(case_record(2, case_id="A-2", vin=VALID_VINS[1]))
    crm.add_case(case_record(3, case_id="K-1", oem="kestrel", vin=VALID_VINS[2]))
    cases = crm.list_cases()
    crm.dispose()

    clean = check_ledgers({"northwind": [_entry("northwind", "A-1", VALID_VINS[0])]}, cases)
    assert clean.duplicates == [] and clean.wrong_submissions == []

    ledgers = {
        "northwind": [
            _entry("northwind", "A-1", VALID_VINS[0]),
            _entry("northwind", "A-1", VALID_VINS[0]),  # submitted twice
            _entry("northwind", "A-2", VALID_VINS[0]),  # A-1's VIN under A-2's id
            _entry("northwind", "A-9", VALID_VINS[0]),  # no such case
            _entry("northwind", "K-1", VALID_VINS[2]),  # another OEM's case
        ]
    }
    check = check_ledgers(ledgers, cases)
    assert check.duplicates == ["northwind/A-1 x2"]
    assert [w.split(":")[0] for w in check.wrong_submissions] == [
        "northwind/A-2",
        "northwind/'A-9'",
        "northwind/K-1",
    ]


def test_stuck_lists_cases_no_run_read(sqlite_url):
    crm = EmbeddedCrm.from_url(sqlite_url)
    crm.add_case(case_record(1, case_id="A-1"))
    stuck = find_stuck(crm.list_cases(), [], served=["northwind"])
    crm.dispose()
    assert stuck == ["case 'A-1' (northwind): never read"]


def test_the_secret_scan_finds_a_short_password_where_it_stands_as_a_value(tmp_path):
    short, long_ = "Kw7pZ", "a-long-dealer-password-1"
    (tmp_path / "ok.txt").write_text("xKw7pZx and Kw7pZz are other words")
    (tmp_path / "media.png").write_bytes(b"\x89PNG....Kw7pZ....")  # chance bytes in an image
    assert scan_for_secrets(tmp_path, [short, long_]).hits == []

    (tmp_path / "form.txt").write_text("username=d1&password=Kw7pZ&next=/")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("trace.network", json.dumps({"body": "a-long-dealer-password-1"}))
    (tmp_path / "trace.zip").write_bytes(buf.getvalue())
    scan = scan_for_secrets(tmp_path, [short, long_])
    assert [p.rsplit("/", 1)[-1] for p in scan.hits] == ["form.txt", "trace.zip"]
    assert (scan.files_scanned, scan.secrets_checked, scan.short_secrets) == (4, 2, 1)
