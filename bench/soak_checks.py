"""The soak's outcome checks that look past the job store: what the portals received, what no run
will ever read, and whether a secret reached a stored artifact.

Each check compares two independent records (a portal's ledger against the CRM, the CRM's feed
against the OEMs the runs serve, the artifacts against the credentials file), so a bug in the
pipeline's own bookkeeping cannot hide its effect.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

#: Leading bytes of images and videos: a few characters of a short secret occur there by chance,
#: and the redactor leaves them (see submissions_pipeline/redaction.py), so only long secrets are
#: searched in them.
_MEDIA_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"\x1aE\xdf\xa3", b"RIFF")


class SecretScan(BaseModel):
    """Every stored artifact searched for every credential the soak's dealers use."""

    hits: list[str]
    files_scanned: int
    secrets_checked: int
    short_secrets: int


class LedgerCheck(BaseModel):
    """What the portals received, judged against the CRM."""

    duplicates: list[str]
    wrong_submissions: list[str]


def portal_ledgers(portal_urls: Mapping[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Every portal's ledger (read over its admin API while the sandbox still runs)."""
    from sandbox.admin_client import ledger

    return {oem: list(ledger(url)) for oem, url in portal_urls.items()}


def check_ledgers(
    ledgers: Mapping[str, list[dict[str, Any]]], crm_cases: Iterable[Any]
) -> LedgerCheck:
    """Duplicates (a case id a portal received more than once) and wrong submissions (a ledger
    entry whose case is unknown to the CRM, belongs to another OEM or carries another VIN)."""
    by_case = {c.case_id: c for c in crm_cases}
    duplicates: list[str] = []
    wrong: list[str] = []
    for oem, entries in sorted(ledgers.items()):
        counts = Counter(e["case_id"] for e in entries)
        duplicates += [f"{oem}/{case_id} x{n}" for case_id, n in sorted(counts.items()) if n > 1]
        for e in entries:
            case = by_case.get(e["case_id"])
            vin = str((case.raw if case else {}).get("vin", "")).strip().upper()
            if case is None:
                wrong.append(f"{oem}/{e['case_id']!r}: no such case in the CRM")
            elif case.oem != oem:
                wrong.append(f"{oem}/{e['case_id']}: the CRM files it under {case.oem!r}")
            elif str(e["vin"]).strip().upper() != vin:
                wrong.append(
                    f"{oem}/{e['case_id']}: VIN {e['vin']} on the portal, {vin} in the CRM"
                )
    return LedgerCheck(duplicates=duplicates, wrong_submissions=wrong)


def find_stuck(crm_cases: Iterable[Any], jobs: Iterable[Any], served: Iterable[str]) -> list[str]:
    """Cases no run has read (still `new`, or a revision still waiting for intake) and jobs due
    for a claim that no run serves (an OEM key without a portal in this soak)."""
    from submissions_pipeline.crm import CrmStatus
    from submissions_pipeline.domain.states import CLAIMABLE_STATES

    served = set(served)
    stuck = [
        f"case {c.case_id!r} ({c.oem}): {'revision unread' if c.changed else 'never read'}"
        for c in crm_cases
        if c.status is CrmStatus.NEW or c.changed
    ]
    stuck += [
        f"job {j.job_id} ({j.oem}/{j.case_id}): {j.state.value}, no run serves {j.oem!r}"
        for j in jobs
        if j.state in CLAIMABLE_STATES and j.oem not in served
    ]
    return stuck


def secret_values(credentials_file: Path) -> list[str]:
    """Every password and TOTP secret in the credentials file the soak's runs read."""
    from submissions_pipeline.credentials import JsonCredentialProvider

    return JsonCredentialProvider(json.loads(credentials_file.read_text())).all_secrets()


def _short_pattern(secrets: list[str]) -> re.Pattern[bytes] | None:
    """A short secret counts where it stands as a whole value (after and before a character that
    is not a letter or digit), in any of its encodings: what the redactor must mask."""
    from submissions_pipeline.redaction import SHORT_SECRET, secret_forms

    forms = {f for s in secrets if s and len(s) < SHORT_SECRET for f in secret_forms(s)}
    if not forms:
        return None
    body = b"|".join(re.escape(f.encode()) for f in sorted(forms, key=len, reverse=True))
    return re.compile(rb"(?<![A-Za-z0-9])(?:" + body + rb")(?![A-Za-z0-9])")


def scan_for_secrets(
    root: Path, secrets: list[str], exclude: frozenset[Path] = frozenset()
) -> SecretScan:
    """Every file under `root` but `exclude` (trace archives opened) searched for every secret:
    a long one anywhere, a short one (under the redactor's SHORT_SECRET) as a whole value
    outside images and videos."""
    from submissions_pipeline.redaction import SHORT_SECRET

    long_needles = [s.encode() for s in secrets if s and len(s) >= SHORT_SECRET]
    short = _short_pattern(secrets)
    hits: list[str] = []
    scanned = 0
    for path in sorted(root.rglob("*")) if root.exists() else []:
        if not path.is_file() or path in exclude:
            continue
        data = path.read_bytes()
        blobs = [data]
        if path.suffix == ".zip":
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                blobs = [z.read(n) for n in z.namelist()]
        scanned += 1
        if any(n in b for b in blobs for n in long_needles) or (
            short is not None
            and any(not b.startswith(_MEDIA_MAGIC) and short.search(b) for b in blobs)
        ):
            hits.append(str(path))
    return SecretScan(
        hits=hits,
        files_scanned=scanned,
        secrets_checked=len({s for s in secrets if s}),
        short_secrets=len({s for s in secrets if s and len(s) < SHORT_SECRET}),
    )
