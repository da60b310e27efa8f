"""The go-live watch: five clean runs against a sandbox portal make the OEM's baseline (success
rate, p95 time-to-submit per step); a run against the same portal slowed down warns of drift.
The watch keeps its state in the job store, where every later run finds it."""

from __future__ import annotations

import json

from submissions_pipeline.domain.golive import GoLiveThresholds, RunStats
from submissions_pipeline.golive_watch import GoLiveWatch, run_stats
from submissions_pipeline.runner import run_batch
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.factories import make_case, quick_config

OEM = "northwind"


def test_five_clean_runs_make_the_baseline_and_a_slowed_portal_warns(runner_deps, sandbox):
    watch = GoLiveWatch(runner_deps.store)
    thresholds = GoLiveThresholds()
    verdicts = []
    for run in range(5):
        runner_deps.store.enqueue(make_case(run + 1, oem=OEM))
        report = run_batch(quick_config(oem=OEM), runner_deps)
        verdicts.append(watch.observe(OEM, run_stats([report]), thresholds))
    assert [v.status for v in verdicts] == ["proving"] * 4 + ["baseline_recorded"]
    baseline = watch.state(OEM).baseline
    assert baseline is not None and baseline.runs == 5 and baseline.success_rate == 1.0
    assert {"login", "search", "fill", "submit", "confirm"} <= set(baseline.step_p95_s)

    # The portal answers every page 1.5 s later: each step that loads a page drifts.
    sandbox.configure(OEM, latency_ms=1500)
    runner_deps.store.enqueue(make_case(6, oem=OEM))
    # A later run sees the baseline through a watch of its own (another process, another pod).
    watch = GoLiveWatch(JobStore(runner_deps.store.engine))
    slow = watch.observe(
        OEM, run_stats([run_batch(quick_config(oem=OEM), runner_deps)]), thresholds
    )

    assert slow.status == "drift", slow
    (warning,) = slow.warnings
    assert warning.startswith(f"{OEM}: p95 time-to-submit") and "1.5x the baseline" in warning
    assert "slower steps: " in warning and "search" in warning
    assert len(sandbox.ledger(OEM)) == 6  # slower, still submitted: drift is a warning


def test_an_unclean_run_starts_the_count_again(store: JobStore):
    watch = GoLiveWatch(store)
    clean, failed = RunStats.of([(True, 1.0, {})]), RunStats.of([(False, 1.0, {})])
    for stats in [clean, clean, failed, clean]:
        verdict = watch.observe("x", stats, GoLiveThresholds())
    assert verdict.status == "proving" and verdict.clean_runs == 1


def test_an_earlier_versions_file_moves_into_the_store_once(store: JobStore, tmp_path):
    clean = RunStats.of([(True, 1.0, {"login": 0.5})])
    (tmp_path / "x.json").write_text(json.dumps({"clean_runs": [clean.model_dump(mode="json")]}))
    watch = GoLiveWatch(store, legacy_folder=tmp_path)

    assert watch.state("x").clean_runs == [clean]
    (tmp_path / "x.json").unlink()  # a new pod has no such file; the store has the count
    verdict = watch.observe("x", clean, GoLiveThresholds())
    assert verdict.status == "proving" and verdict.clean_runs == 2
    assert GoLiveWatch(store).state("x").clean_runs == [clean, clean]
