"""Keeps each OEM's go-live baseline and judges runs against it (rules in `domain.golive`).

Per OEM, the clean runs counted so far and, once five are in a row, the baseline they made, as
one JSON document in the job store (`golive_baselines`): every run of a deployment sees it,
whether it executes on this machine or in a pod of its own. Evidence TTLs never touch it.
Earlier versions kept it in a file per OEM under `SUBMISSIONS_HOME/golive`; such a file is
read once, when the store has nothing for the OEM yet, and its state moves to the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

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


class GoLiveStore(Protocol):
    """Where the states live (the job store)."""

    def golive_state(self, oem: str) -> dict[str, Any] | None: ...

    def save_golive_state(self, oem: str, state: dict[str, Any]) -> None: ...


class GoLiveWatch:
    """Baselines per OEM in `store`; `legacy_folder` holds an earlier version's files."""

    def __init__(self, store: GoLiveStore, legacy_folder: Path | None = None):
        self.store = store
        self.legacy_folder = legacy_folder

    def state(self, oem: str) -> GoLiveState:
        saved = self.store.golive_state(oem)
        if saved is not None:
            return GoLiveState.model_validate(saved)
        legacy = self.legacy_folder / f"{oem}.json" if self.legacy_folder else None
        if legacy is not None and legacy.exists():
            state = GoLiveState.model_validate_json(legacy.read_text())
            self._save(oem, state)  # from now on the store's
            return state
        return GoLiveState()

    def _save(self, oem: str, state: GoLiveState) -> None:
        self.store.save_golive_state(oem, state.model_dump(mode="json"))

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
