"""The soak harness end to end at a small N: real pipeline, faulty portals, judged report."""

from __future__ import annotations

import json

from bench.soak import SoakConfig, run_soak


def test_small_soak_settles_every_case_once_and_reports(tmp_path):
    out = tmp_path / "soak"
    cfg = SoakConfig(jobs=12, invalid_share=0.3, out_dir=out, retry_time_scale=0.002)
    report = run_soak(cfg, echo=lambda _line: None)

    assert report.cases == 12 and report.jobs == 12 - report.invalid_cases
    assert report.invalid_cases >= 1  # the seeded mistakes came back as invalid data
    assert report.duplicates == 0 and report.orphans == 0 and report.unsettled == 0
    assert report.crm_mismatches == [] and report.secrets_found == []
    assert report.artifacts_scanned > 20
    assert report.p95_job_s is not None and report.p95_job_s < 300
    assert sum(report.states.values()) == report.jobs
    saved = json.loads((out / "report.json").read_text())
    assert saved["jobs"] == report.jobs and (out / "chart.png").stat().st_size > 1000
