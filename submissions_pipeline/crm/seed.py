"""Demo cases for the embedded CRM: realistic warranty claims for every sandbox OEM.

Mostly valid claims, a few invalid ones a human must fix (each wrong in exactly one field),
some redaction-sensitive or prioritised, and 2-3 toggleable test records per OEM. Generation
is deterministic for a seed and a day; seeding again adds nothing, because case ids depend
only on the OEM and the position and only missing ids are added.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta
from random import Random
from typing import Any

from pydantic import BaseModel, Field

from submissions_pipeline.crm.embedded import EmbeddedCrm

#: The OEM portals the sandbox serves.
SANDBOX_OEMS: tuple[str, ...] = ("northwind", "aurora", "kestrel")

#: Dealer accounts every sandbox portal has; a case for any other dealer cannot log in.
DEALER_IDS: tuple[str, ...] = ("D1001", "D1002", "D1003", "D1004", "D1005")

#: Smallest per-OEM count that still holds the whole mix (2 test, 3 invalid, 1 valid).
MIN_PER_OEM = 6

_CASE_PREFIX = {"northwind": "NW", "aurora": "AU", "kestrel": "KS"}

# Fictional world manufacturer identifiers (VIN positions 1-3) for the fictional OEMs.
_WMI = {"northwind": ("1NW", "2NW"), "aurora": ("JAR", "JA4"), "kestrel": ("WKS", "SKS")}

_VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # ISO 3779: no I, O or Q
_VIN_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_MODEL_YEAR_CODES = "ABCDEFGHJKLMNPRSTVWXY123456789"  # a 30-year cycle from 1980 (and 2010)

# (complaint, cause, correction, part number, typical labor hours): warranty repairs as a
# service advisor writes them up.
_REPAIRS: tuple[tuple[str, str, str, str, float], ...] = (
    (
        "Customer states check engine light on and rough idle at cold start",
        "Ignition coil cylinder 2 failed, stored code P0302",
        "Replaced ignition coil, cleared codes, road tested OK",
        "IGN-4471",
        1.2,
    ),
    (
        "Customer states water on passenger floor after heavy rain",
        "Sunroof front drain tube disconnected at A-pillar",
        "Reconnected and secured drain tube, water tested, no leak",
        "SRF-2210",
        1.8,
    ),
    (
        "Customer states A/C blows warm air at idle",
        "A/C compressor clutch coil open circuit",
        "Replaced compressor, evacuated and recharged system",
        "AC-CMP-5520",
        3.5,
    ),
    (
        "Customer states harsh shift from 2nd to 3rd gear when warm",
        "Shift solenoid B sticking, stored code P0758",
        "Replaced shift solenoid B, updated TCM software, performed relearn",
        "TRN-SOL-0758",
        2.9,
    ),
    (
        "Customer states infotainment screen goes black while driving",
        "Head unit software fault causing reboot loop",
        "Updated head unit software to current level, verified operation",
        "SW-HU-2026",
        0.8,
    ),
    (
        "Customer states oil spots under vehicle overnight",
        "Rear main seal leaking at crankshaft flange",
        "Removed transmission, replaced rear main seal, topped up oil",
        "ENG-RMS-310",
        8.5,
    ),
    (
        "Customer states battery light on and vehicle stalled",
        "Alternator voltage regulator failed, output 11.9 V",
        "Replaced alternator, tested charging system OK",
        "ALT-14V-220",
        1.5,
    ),
    (
        "Customer states power liftgate does not open from key fob",
        "Liftgate latch actuator motor failed",
        "Replaced liftgate latch actuator, verified fob and switch operation",
        "LGT-ACT-771",
        1.1,
    ),
    (
        "Customer states wind noise from driver door above 50 mph",
        "Door weatherstrip not seated at upper frame",
        "Replaced driver door weatherstrip, road tested, noise gone",
        "WS-DRV-404",
        0.9,
    ),
    (
        "Customer states low coolant warning and sweet smell after driving",
        "Water pump shaft seal weeping coolant",
        "Replaced water pump and gasket, refilled and bled cooling system",
        "WP-1180-A",
        3.2,
    ),
    (
        "Customer states tire pressure light on with correct pressures",
        "Left rear TPMS sensor battery dead, no signal",
        "Replaced left rear TPMS sensor, relearned all sensors",
        "TPMS-315-LR",
        0.6,
    ),
    (
        "Customer states humming noise from front right that rises with speed",
        "Front right wheel bearing worn, play at the hub",
        "Replaced front right hub bearing assembly, torqued to spec",
        "HUB-FR-8821",
        1.7,
    ),
)


def _missing_vin(record: dict[str, Any], rng: Random) -> None:
    del record["vin"]


def _bad_dealer(record: dict[str, Any], rng: Random) -> None:
    record["dealer_id"] = f"dealer {rng.randint(10, 99)}"


def _negative_mileage(record: dict[str, Any], rng: Random) -> None:
    record["payload"]["mileage"] = -record["payload"]["mileage"]


def _short_complaint(record: dict[str, Any], rng: Random) -> None:
    record["payload"]["complaint"] = rng.choice(("noise", "leak", "see RO"))


def _vin_with_o(record: dict[str, Any], rng: Random) -> None:
    record["vin"] = record["vin"][:11] + "O" + record["vin"][12:]


def _zero_labor(record: dict[str, Any], rng: Random) -> None:
    record["payload"]["labor_hours"] = 0


def _us_date(record: dict[str, Any], rng: Random) -> None:
    d = date.fromisoformat(record["payload"]["repair_date"])
    record["payload"]["repair_date"] = d.strftime("%m/%d/%Y")


#: The mistakes people make entering a case, each in one field (the field validate_case names).
#: The first three are always present; larger seeds cycle through the rest.
_MISTAKES: tuple[tuple[str, Callable[[dict[str, Any], Random], None]], ...] = (
    ("vin", _missing_vin),
    ("dealer_id", _bad_dealer),
    ("payload.mileage", _negative_mileage),
    ("payload.complaint", _short_complaint),
    ("vin", _vin_with_o),
    ("payload.labor_hours", _zero_labor),
    ("payload.repair_date", _us_date),
)


class DemoCase(BaseModel):
    """One generated case: the raw record and, for an invalid one, the field that is wrong."""

    raw: dict[str, Any]
    invalid_field: str | None = None


class OemSeedCounts(BaseModel):
    """The mix generated for one OEM (valid includes the test records) and how much was new."""

    cases: int
    valid: int
    invalid: int
    redaction_sensitive: int
    test_records: int
    prioritised: int
    added: int = Field(description="Cases that were not in the CRM yet.")


class SeedSummary(BaseModel):
    """What seeding generated, per OEM, and which field is wrong in each invalid case."""

    seed: int
    per_oem: dict[str, OemSeedCounts]
    invalid_fields: dict[str, str] = Field(description="case_id -> the field a human must fix")

    @property
    def added(self) -> int:
        """Cases new to the CRM across all OEMs (0 when seeding again)."""
        return sum(c.added for c in self.per_oem.values())


def vin_check_digit(vin: str) -> str:
    """The North American check digit (VIN position 9) of a 17-character VIN."""
    total = sum(_VIN_VALUES[c] * w for c, w in zip(vin.upper(), _VIN_WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def model_year_code(year: int) -> str:
    """VIN position 10 for a model year."""
    return _MODEL_YEAR_CODES[(year - 1980) % 30]


def demo_vin(rng: Random, wmi: str, model_year: int) -> str:
    """A well-formed VIN with a correct check digit (so portals that verify it accept it)."""
    vds = "".join(rng.choice(_VIN_ALPHABET) for _ in range(5))
    plant = rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ")
    serial = f"{rng.randint(0, 999_999):06d}"
    partial = f"{wmi}{vds}0{model_year_code(model_year)}{plant}{serial}"
    return partial[:8] + vin_check_digit(partial) + partial[9:]


def case_prefix(oem: str) -> str:
    """The readable prefix of an OEM's demo case ids (NW-000123)."""
    return _CASE_PREFIX.get(oem) or oem[:4].upper()


def _valid_record(oem: str, case_id: str, rng: Random, today: date) -> dict[str, Any]:
    complaint, cause, correction, part_number, hours = rng.choice(_REPAIRS)
    model_year = today.year - rng.randint(0, 4)
    age = today.year - model_year
    wmi = rng.choice(_WMI.get(oem, ("5DM",)))
    return {
        "case_id": case_id,
        "oem": oem,
        "dealer_id": rng.choice(DEALER_IDS),
        "vin": demo_vin(rng, wmi, model_year),
        "payload": {
            "repair_date": (today - timedelta(days=rng.randint(1, 60))).isoformat(),
            "mileage": rng.randint(300, 9_000) + age * rng.randint(7_000, 15_000),
            "complaint": complaint,
            "cause": cause,
            "correction": correction,
            "labor_hours": min(40.0, round(hours * rng.uniform(0.9, 1.25), 1)),
            "part_number": part_number,
        },
        "priority": 0,
        "redaction_sensitive": False,
        "test_record": False,
    }


def build_demo_cases(oem: str, per_oem: int, seed: int, today: date) -> list[DemoCase]:
    """One OEM's demo cases in feed order; the same arguments always give the same cases."""
    if per_oem < MIN_PER_OEM:
        raise ValueError(f"per_oem must be at least {MIN_PER_OEM} to hold the demo mix")
    rng = Random(f"{seed}:{oem}")  # str seeds are stable across runs and PYTHONHASHSEED
    n_test = 2 if per_oem < 12 else 3
    n_invalid = max(3, round(per_oem * 0.15))
    n_valid = per_oem - n_test - n_invalid

    slots = ["valid"] * n_valid + ["invalid"] * n_invalid + ["test"] * n_test
    rng.shuffle(slots)
    prefix = case_prefix(oem)
    cases: list[DemoCase] = []
    numbered = tests = invalid = 0
    for slot in slots:
        if slot == "test":
            tests += 1
            raw = _valid_record(oem, f"{prefix}-TEST-{tests:02d}", rng, today)
            raw["test_record"] = True
            cases.append(DemoCase(raw=raw))
            continue
        numbered += 1
        raw = _valid_record(oem, f"{prefix}-{numbered:06d}", rng, today)
        if slot == "valid":
            cases.append(DemoCase(raw=raw))
            continue
        field, mistake = _MISTAKES[invalid % len(_MISTAKES)]
        invalid += 1
        mistake(raw, rng)
        cases.append(DemoCase(raw=raw, invalid_field=field))

    regular = [c for c in cases if c.invalid_field is None and not c.raw["test_record"]]
    for c in rng.sample(regular, k=max(1, round(n_valid * 0.2))):
        c.raw["redaction_sensitive"] = True
    for c in rng.sample(regular, k=max(1, round(n_valid * 0.25))):
        c.raw["priority"] = rng.choice((1, 1, 2, 3, 5))
    return cases


def build_bulk_cases(
    oem: str, count: int, seed: int, today: date, invalid_share: float = 0.02
) -> list[DemoCase]:
    """Many realistic cases for one OEM (soak, benchmark): valid ones and a small share with
    one human mistake each. Case ids are `<prefix>-S000001`…, apart from the demo's."""
    rng = Random(f"bulk:{seed}:{oem}")
    prefix = case_prefix(oem)
    cases: list[DemoCase] = []
    for n in range(1, count + 1):
        raw = _valid_record(oem, f"{prefix}-S{n:06d}", rng, today)
        if rng.random() < invalid_share:
            field, mistake = _MISTAKES[n % len(_MISTAKES)]
            mistake(raw, rng)
            cases.append(DemoCase(raw=raw, invalid_field=field))
        else:
            cases.append(DemoCase(raw=raw))
    return cases


def seed_demo_cases(
    crm: EmbeddedCrm,
    oems: Sequence[str] = SANDBOX_OEMS,
    per_oem: int = 20,
    seed: int = 7,
    today: date | None = None,
) -> SeedSummary:
    """Fill the embedded CRM with demo cases for every OEM; seeding again adds nothing.

    Repair dates fall within the 60 days before `today` (default: the CRM clock's date).
    """
    prefixes = [case_prefix(o) for o in oems]
    if len(set(prefixes)) != len(prefixes):
        raise ValueError(f"OEMs {list(oems)} share a case id prefix: {prefixes}")
    today = today or crm.clock().date()
    per: dict[str, OemSeedCounts] = {}
    invalid_fields: dict[str, str] = {}
    for oem in oems:
        cases = build_demo_cases(oem, per_oem, seed, today)
        existing = {c.case_id for c in crm.list_cases(oem=oem)}
        before = len(existing)
        for c in cases:
            # Only missing cases: another day's generation differs (repair dates), and adding
            # an existing id with other content would revise a case already on its way.
            if c.raw["case_id"] not in existing:
                crm.add_case(c.raw)
            if c.invalid_field is not None:
                invalid_fields[c.raw["case_id"]] = c.invalid_field
        raws = [c.raw for c in cases]
        per[oem] = OemSeedCounts(
            cases=len(cases),
            valid=sum(c.invalid_field is None for c in cases),
            invalid=sum(c.invalid_field is not None for c in cases),
            redaction_sensitive=sum(r["redaction_sensitive"] for r in raws),
            test_records=sum(r["test_record"] for r in raws),
            prioritised=sum(r["priority"] > 0 for r in raws),
            added=len(crm.list_cases(oem=oem)) - before,
        )
    return SeedSummary(seed=seed, per_oem=per, invalid_fields=invalid_fields)
