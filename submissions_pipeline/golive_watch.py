"""Keeps each OEM's go-live baseline and judges runs against it (rules in `domain.golive`).

One small JSON file per OEM in a folder (`SUBMISSIONS_HOME/golive` by default): the clean runs
counted so far and, once five are in a row, the baseline they made. Evidence TTLs never touch it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from submissions_pipeline.domain import SubmissionState
from submissions_pipeline.domain.golive import (
    BASELINE_RUNS,
    GoLiveBaseline,
    GoLiveThresholds,
    RunStats,
    drift_warnings,
)
from submissions_pipeline.runner import BatchReport


class GoLiveState(BaseModel):
    """The file's content: the clean runs in a row so far, then the baseline."""

    clean_runs: list[RunStats] = Field(default_factory=list)
    baseline: GoLiveBaseline | None = None


class GoLiveVerdict(BaseModel):
    """What one run meant for the OEM's go-live watch."""

    status: Literal["idle", "proving", "baseline_recorded", "within_baseline", "drift"]
    clean_runs: int = 0
    warnings: list[str] = Field(default_factory=list)
    baseline: GoLiveBaseline | None = None


def run_stats(reports: list[BatchReport]) -> RunStats:
    """One run's stats from its workers' reports."""
    return RunStats.of(
        [
            (o.state is SubmissionState.EVIDENCE_STORED, o.seconds, o.step_seconds)
            for r in reports
            for o in r.outcomes
        ]
    )


class GoLiveWatch:
    """Baselines per OEM in `folder`."""

    def __init__(self, folder: Path):
        self.folder = folder

    def _path(self, oem: str) -> Path:
        return self.folder / f"{oem}.json"

    def state(self, oem: str) -> GoLiveState:
        path = self._path(oem)
        if not path.exists():
            return GoLiveState()
        return GoLiveState.model_validate_json(path.read_text())

    def _save(self, oem: str, state: GoLiveState) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self._path(oem).with_suffix(".tmp")
        tmp.write_text(json.dumps(state.model_dump(mode="json"), indent=2))
        tmp.replace(self._path(oem))

    def observe(self, oem: str, run: RunStats, thresholds: GoLiveThresholds) -> GoLiveVerdict:
        """Count a run towards the baseline, or judge it against the baseline."""
        state = self.state(oem)
        if state.baseline is not None:
            warnings = drift_warnings(state.baseline, run, thresholds)
            status = "drift" if warnings else "within_baseline"
            return GoLiveVerdict(status=status, warnings=warnings, baseline=state.baseline)
        if run.attempts == 0:
            return GoLiveVerdict(status="idle", clean_runs=len(state.clean_runs))
        # Like the release gate: any unclean run starts the count again.
        state.clean_runs = [*state.clean_runs, run] if run.clean else []
        if len(state.clean_runs) >= BASELINE_RUNS:
            state.baseline = GoLiveBaseline.of(oem, state.clean_runs[-BASELINE_RUNS:])
            self._save(oem, state)
            return GoLiveVerdict(
                status="baseline_recorded", clean_runs=BASELINE_RUNS, baseline=state.baseline
            )
        self._save(oem, state)
        return GoLiveVerdict(status="proving", clean_runs=len(state.clean_runs))
