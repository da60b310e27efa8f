"""The SQLite database holds cases (VINs, names, complaints): only its owner may read it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from submissions_pipeline.store import JobStore
from submissions_pipeline_tests.factories import make_case


def _modes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_a_new_database_and_its_wal_files_are_owner_only(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        store = JobStore.from_url(f"sqlite:///{tmp_path / 'db' / 'submissions.db'}")
        store.enqueue(make_case(1))
        modes = _modes(tmp_path / "db")  # while open: the -wal and -shm files exist
        store.dispose()
    finally:
        os.umask(previous)

    assert {"submissions.db", "submissions.db-wal", "submissions.db-shm"} <= set(modes)
    assert set(modes.values()) == {0o600}


def test_a_database_an_older_version_left_readable_is_taken_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'submissions.db'}"
    JobStore.from_url(url).dispose()
    for name in ("submissions.db", "submissions.db-wal"):
        (tmp_path / name).touch()
        os.chmod(tmp_path / name, 0o644)

    store = JobStore.from_url(url)
    store.enqueue(make_case(1))
    store.dispose()

    assert set(_modes(tmp_path).values()) == {0o600}
