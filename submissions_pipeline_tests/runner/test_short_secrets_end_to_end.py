"""Short dealer passwords (4-8 characters) never reach a stored trace, log or artifact.

Real jobs run through the sandbox portals with dealers whose passwords are short and full of
characters that change under encoding; every job is forced into a second attempt, whose trace
records the network log and DOM snapshots, and every stored file (every member of every trace
archive) is searched for every secret in every encoding it could take.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from pathlib import Path

import pyotp
import pytest

from sandbox.accounts import credentials_document, password_overrides
from submissions_pipeline.credentials import JsonCredentialProvider
from submissions_pipeline.domain import RetryPolicy
from submissions_pipeline.domain import SubmissionState as S
from submissions_pipeline.runner import EvidenceSettings, StepBudgets, run_batch
from submissions_pipeline_tests.factories import make_case, quick_config, secret_encodings

#: Each one has a character outside hex and URL-safe base64, so that a random session token or
#: content hash cannot contain it by chance; several change under URL, JSON or HTML encoding.
SHORT_PASSWORDS = {
    ("northwind", "D1001"): "Qz7!",
    ("northwind", "D1002"): "r#4K&9",
    ("northwind", "D1003"): "m&N3=x+2",
    ("aurora", "D1001"): "W%5e",
    ("aurora", "D1002"): 'k"8<zX',
    ("aurora", "D1003"): "Hp9 t+Q~",
    ("kestrel", "D1001"): "7&Xy",
    ("kestrel", "D1002"): "Ab=1%2",
    ("kestrel", "D1003"): "Zx#9?k/L",
}

#: Video frames, screenshots and images: binary, where a text secret cannot appear, but where a
#: given 4-byte sequence turns up by chance about once in 4 GB (a few in a thousand runs here).
MEDIA_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"\x1aE\xdf\xa3", b"RIFF")
#: Below this length a secret is searched for in text only (see MEDIA_MAGIC).
MEDIA_MIN_LEN = 6


def stored_blobs(root: Path) -> list[tuple[str, bytes]]:
    """(where, bytes) of every stored file and of every member of every archive."""
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                out.extend((f"{path}!{n}", z.read(n)) for n in z.namelist())
        else:
            out.append((str(path), data))
    return out


def login_posts(root: Path, login_paths: set[str]) -> list[dict]:
    """Network entries of credential POSTs in the stored trace archives."""
    found = []
    for path in root.rglob("trace-*.zip"):
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if not name.endswith(".network"):
                    continue
                for line in z.read(name).decode().splitlines():
                    if not line.strip():
                        continue
                    request = json.loads(line).get("snapshot", {}).get("request", {})
                    url = request.get("url", "")
                    if request.get("method") == "POST" and any(
                        url.split("?")[0].endswith(p) for p in login_paths
                    ):
                        found.append(request)
    return found


@pytest.fixture
def short_password_deps(runner_deps):
    """The runner's dependencies with dealers D1001-D1003 of every portal on short passwords."""
    with password_overrides(SHORT_PASSWORDS):
        document = credentials_document(["northwind", "aurora", "kestrel"])
        runner_deps.credentials = JsonCredentialProvider(document)
        yield runner_deps


def test_short_passwords_never_reach_a_second_attempts_trace_or_any_artifact(
    short_password_deps, sandbox
):
    deps = short_password_deps
    deps.store.policy = RetryPolicy(time_scale=0.0005)
    dealers = ["D1001", "D1002", "D1003"]
    job_ids = []
    for i, (oem, dealer) in enumerate(
        (oem, d) for oem in ("northwind", "aurora", "kestrel") for d in dealers
    ):
        job_ids.append(deps.store.enqueue(make_case(i + 1, oem=oem, dealer_id=dealer)).job_id)

    # Attempt 1 logs in, then the search overruns its budget: every job is retried.
    slow = StepBudgets(per_step_s={"search": 0.6})
    for oem in ("northwind", "aurora", "kestrel"):
        sandbox.configure(oem, search_latency_s=1.5)
    first = run_batch(quick_config(budgets=slow, max_jobs=9), deps)
    assert len(first.outcomes) == 9
    assert {deps.store.get(j).state for j in job_ids} == {S.RETRY_SCHEDULED}

    # Attempt 2 (rich trace: network log and DOM snapshots) logs in again; northwind and
    # aurora submit, kestrel's confirmation is dropped (failure.json, DOM and video kept).
    time.sleep(0.5)
    sandbox.reset()
    sandbox.configure("kestrel", drop_after_submit_rate=1.0)
    cfg = quick_config(max_jobs=9, evidence=EvidenceSettings(video="on"))
    second = run_batch(cfg, deps)
    assert len(second.outcomes) == 9
    jobs = [deps.store.get(j) for j in job_ids]
    assert all(j.attempt == 2 for j in jobs)
    states = {j.oem: set() for j in jobs}
    for j in jobs:
        states[j.oem].add(j.state)
    assert states == {
        "northwind": {S.EVIDENCE_STORED},
        "aurora": {S.EVIDENCE_STORED},
        "kestrel": {S.NEEDS_RECONCILIATION},
    }

    root = deps.artifacts.root
    # The credential POSTs really were in the rich traces, and they were kept without bodies.
    posts = login_posts(root, {"/login", "/auth/signin", "/auth/verify", "/session/new"})
    assert len(posts) >= 6
    assert all(not p.get("postData") for p in posts), "a credential POST kept its body"

    totp_secrets = [
        deps.credentials.get("aurora", d).totp_secret.get_secret_value() for d in dealers
    ]
    forms = {s: secret_encodings(s) for s in [*SHORT_PASSWORDS.values(), *totp_secrets]}
    now = time.time()
    codes = {pyotp.TOTP(t).at(now + dt) for t in totp_secrets for dt in range(-600, 61, 30)}
    # A code is 6 digits: searched for where a typed value stands (not inside a longer number,
    # a decimal fraction or a JSON number), so that timestamps cannot match it by chance.
    code_pattern = re.compile(
        rb"(?<![\w.:+-])(?:" + b"|".join(c.encode() for c in codes) + rb")(?![\w.])"
    )
    blobs = stored_blobs(root)
    assert len(blobs) > 100
    leaks = []
    for where, blob in blobs:
        media = blob.startswith(MEDIA_MAGIC)
        for secret, variants in forms.items():
            if media and len(secret) < MEDIA_MIN_LEN:
                continue
            for form in variants:
                if form.encode() in blob:
                    leaks.append(f"{where}: a {len(secret)}-character secret as {form!r}")
        if not media and (m := code_pattern.search(blob)):
            leaks.append(f"{where}: a one-time code at {m.start()}")
    assert leaks == []
    for job in jobs:
        text = job.model_dump_json()
        assert not any(form in text for variants in forms.values() for form in variants)
