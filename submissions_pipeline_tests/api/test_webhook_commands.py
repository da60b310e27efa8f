"""`submissions api` and `submissions webhooks list|replay` from a shell, configured by the
environment only; no secret reaches the console."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import requests

from submissions_pipeline.api.signing import signature_header
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.servers import AppServer, _free_port
from submissions_pipeline_tests.webhook_receiver import Receiver

API_SECRET, HOOK_SECRET = "ap1k", "h00k"


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "submissions_pipeline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_api_command_serves_signed_run_now_on_loopback(tmp_path):
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    port = _free_port()
    env = {
        **os.environ,
        "SUBMISSIONS_HOME": str(tmp_path),
        "SUBMISSIONS_DB_URL": db,
        "SUBMISSIONS_API_PORT": str(port),
        "SUBMISSIONS_API_CLIENTS": json.dumps({"crm": [API_SECRET]}),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "submissions_pipeline.cli", "api"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(url + "/healthz", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        body = b'{"max_jobs": 3}'
        headers = {
            "Submissions-Client": "crm",
            "Submissions-Signature": signature_header(API_SECRET, int(time.time()), body),
        }
        resp = requests.post(url + "/v1/oems/aurora/run-now", data=body, headers=headers)
        assert resp.status_code == 202, resp.text
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    store = JobStore.from_url(db)
    (request,) = store.api_requests_after(0)
    store.dispose()
    assert (request.oem, request.params) == ("aurora", {"max_jobs": 3})
    assert API_SECRET not in output


def test_webhooks_list_and_replay_redeliver_by_hand(tmp_path):
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    store = JobStore.from_url(db)
    store.record_notification("run.finished", "run-9", oem="kestrel", data={"jobs": 4})
    store.dispose()
    receiver = Receiver(HOOK_SECRET)
    with AppServer(receiver.app()) as server:
        sub = {"name": "ops", "url": server.url + "/hook", "secret": HOOK_SECRET}
        env = {
            **os.environ,
            "SUBMISSIONS_HOME": str(tmp_path),
            "SUBMISSIONS_DB_URL": db,
            "SUBMISSIONS_WEBHOOK_SUBSCRIPTIONS": json.dumps([sub]),
        }
        assert cli(env, "webhooks", "dispatch").returncode == 0
        listed = cli(env, "webhooks", "list")
        replayed = cli(env, "webhooks", "replay", "run.finished:run-9")
        missing = cli(env, "webhooks", "replay", "no-such-event")
    assert "run.finished:run-9" in listed.stdout and "ops: delivered" in listed.stdout
    assert replayed.returncode == 0, replayed.stderr
    assert [e for e, _ in receiver.received] == ["run.finished:run-9"] * 2
    assert receiver.received[0][1] == receiver.received[1][1]
    assert missing.returncode == 1
    for out in (listed, replayed):
        assert HOOK_SECRET not in out.stdout + out.stderr
