"""The local-disk store: atomic writes and the TTL sweep that stands in for a lifecycle rule."""

from __future__ import annotations

import errno
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from submissions_pipeline.artifacts import ArtifactStoreUnavailable, LocalArtifactStore
from submissions_pipeline.artifacts import local as local_module
from submissions_pipeline.domain import ReasonCode

DAY = date(2026, 11, 26)
NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def _age(store: LocalArtifactStore, key: str, age: timedelta) -> None:
    stamp = (NOW - age).timestamp()
    os.utime(store.path_of(key), (stamp, stamp))


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


def test_purge_removes_only_artifacts_older_than_the_ttl(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path, env="dev", ttl_days=30)
    old_day = date(2026, 10, 20)
    expired = store.artifact_key("acme", "old-job", 1, "pre_submit.png", when=old_day)
    almost = store.artifact_key("acme", "job41", 1, "pre_submit.png", when=DAY)
    fresh = store.artifact_key("acme", "job42", 1, "pre_submit.png", when=DAY)
    for key in (expired, almost, fresh):
        store.put_bytes(key, key.encode())
    _age(store, expired, timedelta(days=30, seconds=1))
    _age(store, almost, timedelta(days=29, hours=23))
    crashed_write = store.path_of(almost).parent / ".tmp-crashed"
    crashed_write.write_bytes(b"half")
    os.utime(crashed_write, ((NOW - timedelta(days=31)).timestamp(),) * 2)
    prod = LocalArtifactStore(tmp_path, env="prod", ttl_days=30)
    prod_key = prod.artifact_key("acme", "job1", 1, "pre_submit.png", when=old_day)
    prod.put_bytes(prod_key, b"prod evidence")
    _age(prod, prod_key, timedelta(days=90))

    deleted = store.purge_expired(NOW)

    assert deleted == 1
    assert store.list("dev/") == sorted([almost, fresh])
    assert not crashed_write.exists()
    assert not (tmp_path / "dev" / "acme" / "2026-10-20").exists()  # emptied folders go too
    assert prod.exists(prod_key)  # another env's TTL is its own business


def test_purge_needs_an_aware_now(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        LocalArtifactStore(tmp_path).purge_expired(datetime(2026, 11, 26))


def test_writes_leave_no_temp_files_behind(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    source = tmp_path / "trace.zip"
    source.write_bytes(b"PK" * 2_000_000)
    for attempt in (1, 2):
        store.put_bytes(store.artifact_key("acme", "job42", attempt, "a.png", when=DAY), b"a")
        store.put_file(store.artifact_key("acme", "job42", attempt, "trace.zip", when=DAY), source)

    assert _temp_files(tmp_path / "artifacts") == []
    assert len(store.list("dev/")) == 4


def test_a_failed_write_keeps_the_previous_artifact_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalArtifactStore(tmp_path)
    key = store.artifact_key("acme", "job42", 1, "manifest.json", when=DAY)
    store.put_bytes(key, b'{"version": 1}')

    def disk_full(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(local_module.os, "replace", disk_full)
    with pytest.raises(ArtifactStoreUnavailable) as caught:
        store.put_bytes(key, b'{"version": 2, "much": "longer"}')

    assert caught.value.reason_code is ReasonCode.STORAGE_UNAVAILABLE
    assert store.get_bytes(key) == b'{"version": 1}'
    assert _temp_files(tmp_path) == []


def test_a_root_that_cannot_hold_files_is_unavailable(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "artifacts"
    not_a_folder.write_text("a file where the artifact folder should be")
    store = LocalArtifactStore(not_a_folder)

    with pytest.raises(ArtifactStoreUnavailable):
        store.put_bytes(store.artifact_key("acme", "job42", 1, "a.png", when=DAY), b"a")


def test_the_link_is_a_file_uri_of_the_artifact(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    key = store.artifact_key("acme", "job42", 1, "a.png", when=DAY)

    stored = store.put_bytes(key, b"a", "image/png")

    assert store.url(key) == stored.uri == (tmp_path.resolve() / key).as_uri()
    assert store.url(key).startswith("file:///")


def _modes(root: Path) -> tuple[set[int], set[int]]:
    """(file modes, folder modes) of everything under `root`, `root` included."""
    paths = [root, *root.rglob("*")]
    files = {p.stat().st_mode & 0o777 for p in paths if p.is_file()}
    folders = {p.stat().st_mode & 0o777 for p in paths if p.is_dir()}
    return files, folders


def _write_evidence(store: LocalArtifactStore, tmp_path: Path) -> None:
    video = tmp_path / "video.webm"
    video.write_bytes(b"\x1aE\xdf\xa3 frames")
    store.put_bytes(store.artifact_key("acme", "job42", 1, "failure.json", when=DAY), b"{}")
    store.put_file(store.artifact_key("acme", "job42", 2, "video.webm", when=DAY), video)


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_evidence_is_readable_by_its_owner_only_by_default(tmp_path: Path, umask: int) -> None:
    root = tmp_path / "var" / "artifacts"
    previous = os.umask(umask)
    try:
        _write_evidence(LocalArtifactStore(root), tmp_path)
    finally:
        os.umask(previous)

    files, folders = _modes(root)
    assert files == {0o600} and folders == {0o700}


def test_a_group_readable_deployment_gets_0640_and_0750(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts", file_mode="0640", dir_mode="0750")
    _write_evidence(store, tmp_path)

    assert _modes(tmp_path / "artifacts") == ({0o640}, {0o750})


@pytest.mark.parametrize(
    ("file_mode", "dir_mode"),
    [("0644", "0700"), ("0600", "0755"), ("0606", "0700"), ("0400", "0700"), ("0600", "0600")],
)
def test_modes_that_open_evidence_to_everyone_or_lock_out_its_owner_are_refused(
    tmp_path: Path, file_mode: str, dir_mode: str
) -> None:
    with pytest.raises(ValueError, match="mode"):
        LocalArtifactStore(tmp_path, file_mode=file_mode, dir_mode=dir_mode)


@pytest.mark.parametrize("mode", ["rw-------", "0689", "", "0x180"])
def test_a_mode_must_be_octal_digits(tmp_path: Path, mode: str) -> None:
    with pytest.raises(ValueError, match="octal"):
        LocalArtifactStore(tmp_path, file_mode=mode)


def test_the_modes_are_settings_passed_through_the_resource_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from submissions_pipeline.resource_sets import resource_set
    from submissions_pipeline.settings import load_settings

    monkeypatch.setenv("SUBMISSIONS_ENV", "dev")
    monkeypatch.setenv("SUBMISSIONS_HOME", str(tmp_path))
    monkeypatch.delenv("SUBMISSIONS_ARTIFACT_STORE", raising=False)
    default = resource_set(load_settings())["artifacts"].get_store()
    assert (default.file_mode, default.dir_mode) == (0o600, 0o700)

    monkeypatch.setenv("SUBMISSIONS_ARTIFACT_FILE_MODE", "0640")
    monkeypatch.setenv("SUBMISSIONS_ARTIFACT_DIR_MODE", "0750")
    _write_evidence(resource_set(load_settings())["artifacts"].get_store(), tmp_path)
    assert _modes(tmp_path / "artifacts") == ({0o640}, {0o750})

    monkeypatch.setenv("SUBMISSIONS_ARTIFACT_FILE_MODE", "0644")
    with pytest.raises(ValueError, match="every user"):
        resource_set(load_settings())
