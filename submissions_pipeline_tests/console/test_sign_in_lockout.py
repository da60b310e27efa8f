"""Guessing passwords: five wrong ones in a row lock the account, even against the right
password, and restarting the console does not unlock it (the count is in the job store)."""

from __future__ import annotations

import requests

from submissions_pipeline.artifacts import LocalArtifactStore
from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.console.conftest import (
    OPERATOR,
    PASSWORD,
    VIEWER,
    console_deps_for,
    serve_console,
)

LOCKED = "Too many failed sign-ins"


def _sign_in(url: str, name: str, password: str) -> requests.Response:
    http = requests.Session()
    http.trust_env = False
    return http.post(f"{url}/login", data={"username": name, "password": password})


def test_five_wrong_passwords_lock_the_account_across_a_console_restart(tmp_path):
    store = JobStore.from_url(f"sqlite:///{tmp_path / 'jobs.db'}")
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    try:
        first = serve_console(console_deps_for(store, artifacts, tmp_path))
        console = next(first)
        for _ in range(5):
            wrong = _sign_in(console.url, OPERATOR, "guess")
            assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
        right = _sign_in(console.url, OPERATOR, PASSWORD)
        assert right.status_code == 401 and LOCKED in right.text
        assert PASSWORD not in right.text
        first.close()  # the console stops...

        again = serve_console(console_deps_for(store, artifacts, tmp_path))
        console = next(again)  # ...and starts again over the same store
        refused = _sign_in(console.url, OPERATOR, PASSWORD)
        assert refused.status_code == 401 and LOCKED in refused.text
        other = _sign_in(console.url, VIEWER, PASSWORD)  # one account's lock is its own
        assert other.status_code == 200 and "Sign out" in other.text
        again.close()
    finally:
        store.dispose()
