"""The benchmark's jobs: N valid cases for one sandbox portal, spread over its dealers.

Plain dicts (the CRM's raw record shape), so the raw-Playwright baselines read them without any
project code and the runner and pipeline validate them into `Case`s like real CRM records.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

#: The portal every variant drives: the plain template (dealer code + user + password login,
#: VIN search, two form steps, review, confirmation), a typical 4-page flow.
BENCH_OEM = "northwind"

#: Sandbox dealers; a job's dealer picks the login.
DEALERS = ("D1001", "D1002", "D1003", "D1004", "D1005")

# Valid 17-character VINs (ISO 3779 alphabet; none ends in 000000, the sandbox's "not found").
_VINS = (
    "1HGCM82633A004352",
    "JH4KA7561PC008269",
    "5YJSA1E26HF000337",
    "WDBRF40J43F433423",
    "1FTFW1ET5DFC10312",
)


def bench_cases(n: int, tag: str, oem: str = BENCH_OEM) -> list[dict[str, Any]]:
    """`n` distinct valid cases; `tag` keeps case ids unique per run (the ledger checks them)."""
    repair_date = (datetime.now(UTC).date() - timedelta(days=7)).isoformat()
    return [
        {
            "case_id": f"BENCH-{tag}-{i:05d}",
            "oem": oem,
            "dealer_id": DEALERS[i % len(DEALERS)],
            "vin": _VINS[i % len(_VINS)],
            "payload": {
                "repair_date": repair_date,
                "mileage": 10_000 + i,
                "complaint": "Customer states check engine light on and rough idle at cold start",
                "cause": "Ignition coil cylinder 2 failed, stored code P0302",
                "correction": "Replaced ignition coil, cleared codes, road tested OK",
                "labor_hours": 1.2,
                "part_number": "IGN-4471",
            },
            "priority": 0,
        }
        for i in range(n)
    ]


def dealer_logins(oem: str = BENCH_OEM) -> dict[str, dict[str, str]]:
    """The sandbox dealers' logins as plain strings: {dealer_id: {username, password}}."""
    from sandbox.accounts import credentials

    out = {}
    for dealer in DEALERS:
        creds = credentials(oem, dealer)
        out[dealer] = {"username": creds.username, "password": creds.password}
    return out
