"""Builders for realistic test data (not fixtures: plain functions tests call)."""

from __future__ import annotations

from typing import Any

from submissions_pipeline.domain import Case
from submissions_pipeline.runner import BatchConfig, EvidenceSettings

VALID_VINS = [
    "1HGCM82633A004352",
    "JH4KA7561PC008269",
    "5YJSA1E26HF000337",
    "WDBRF40J43F433423",
    "1FTFW1ET5DFC10312",
]


def case_record(n: int = 1, oem: str = "northwind", **overrides: Any) -> dict[str, Any]:
    """A raw CRM record as the CRM would hand it over."""
    record: dict[str, Any] = {
        "case_id": f"CASE-{n:05d}",
        "oem": oem,
        "dealer_id": f"D100{1 + n % 5}",
        "vin": VALID_VINS[n % len(VALID_VINS)],
        "payload": {
            "repair_date": "2026-11-02",
            "mileage": 10_000 + n,
            "complaint": "Engine light on, rough idle at cold start",
            "cause": "Faulty ignition coil cylinder 2",
            "correction": "Replaced ignition coil, cleared codes",
            "labor_hours": 1.2,
            "part_number": "IGN-4471",
        },
        "priority": 0,
    }
    record.update(overrides)
    return record


def make_case(n: int = 1, **overrides: Any) -> Case:
    return Case.model_validate(case_record(n, **overrides))


def quick_config(**overrides: Any) -> BatchConfig:
    """A batch config for tests: no video unless asked, seeded."""
    cfg: dict[str, Any] = {"seed": 11, "evidence": EvidenceSettings(video="off")}
    cfg.update(overrides)
    return BatchConfig(**cfg)
