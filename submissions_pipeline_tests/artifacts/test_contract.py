"""What every artifact store promises, checked on local disk and on an S3 server alike."""

from __future__ import annotations

import hashlib
import urllib.request
from datetime import date, datetime
from pathlib import Path

import pytest

from submissions_pipeline.artifacts import (
    ArtifactNotFound,
    ArtifactStore,
    InvalidArtifactKey,
    LocalArtifactStore,
)

DAY = date(2026, 11, 26)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


@pytest.fixture(params=["local", "s3"])
def artifact_store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts", env="dev")
    return request.getfixturevalue("s3_store")


def test_bytes_come_back_unchanged_with_their_sha256(artifact_store: ArtifactStore) -> None:
    key = artifact_store.artifact_key("acme", "job42", 1, "pre_submit.png", when=DAY)

    stored = artifact_store.put_bytes(key, PNG, "image/png")

    assert artifact_store.get_bytes(key) == PNG
    assert stored.key == key
    assert stored.size == len(PNG)
    assert stored.sha256 == hashlib.sha256(PNG).hexdigest()
    assert stored.content_type == "image/png"
    assert stored.uri.endswith(key)


def test_files_are_stored_with_a_content_type_from_their_name(
    artifact_store: ArtifactStore, tmp_path: Path
) -> None:
    trace = tmp_path / "trace.zip"
    trace.write_bytes(b"PK\x03\x04" + b"t" * 3_000_000)  # several read chunks
    video = tmp_path / "failure.webm"
    video.write_bytes(b"\x1aE\xdf\xa3webm")
    trace_key = artifact_store.artifact_key("acme", "job42", 2, "trace.zip", when=DAY)
    video_key = artifact_store.artifact_key("acme", "job42", 2, "video/failure.webm", when=DAY)

    stored_trace = artifact_store.put_file(trace_key, trace)
    stored_video = artifact_store.put_file(video_key, video)
    log = artifact_store.put_file(
        artifact_store.artifact_key("acme", "job42", 2, "steps.log", when=DAY),
        _write(tmp_path / "any-name", b"login ok\n"),
        content_type="text/plain",
    )

    assert artifact_store.get_bytes(trace_key) == trace.read_bytes()
    assert stored_trace.sha256 == hashlib.sha256(trace.read_bytes()).hexdigest()
    assert stored_trace.size == trace.stat().st_size
    assert stored_trace.content_type == "application/zip"
    assert stored_video.content_type == "video/webm"
    assert log.content_type == "text/plain"


def test_keys_are_laid_out_by_env_oem_date_job_and_attempt(
    artifact_store: ArtifactStore,
) -> None:
    key = artifact_store.artifact_key("acme", "job42", 3, "confirmation.png", when=DAY)

    assert key == "dev/acme/2026-11-26/job42/attempt-3/confirmation.png"
    assert artifact_store.job_prefix("acme", "job42", when=DAY) == "dev/acme/2026-11-26/job42/"
    assert (
        artifact_store.artifact_key("acme", "job42", 3, "x.png", when=datetime(2026, 11, 26, 23))
        == "dev/acme/2026-11-26/job42/attempt-3/x.png"
    )


def test_list_returns_the_keys_under_a_prefix_and_nothing_else(
    artifact_store: ArtifactStore,
) -> None:
    def key(oem: str, job: str, attempt: int, name: str, when: date = DAY) -> str:
        return artifact_store.artifact_key(oem, job, attempt, name, when=when)

    first = [key("acme", "job42", 1, "pre_submit.png"), key("acme", "job42", 1, "trace.zip")]
    second = [key("acme", "job42", 2, "manifest.json"), key("acme", "job42", 2, "shots/a.png")]
    others = [
        key("acme", "job420", 1, "pre_submit.png"),  # a job id sharing the first characters
        key("zeta", "job42", 1, "pre_submit.png"),
        key("acme", "job42", 1, "pre_submit.png", when=date(2026, 11, 27)),
    ]
    for k in [*first, *second, *others]:
        artifact_store.put_bytes(k, k.encode())

    assert artifact_store.list(artifact_store.job_prefix("acme", "job42", when=DAY, attempt=1)) == (
        sorted(first)
    )
    assert artifact_store.list(artifact_store.job_prefix("acme", "job42", when=DAY)) == sorted(
        first + second
    )
    assert artifact_store.list("dev/acme/2026-11-26/job4") == sorted(first + second + others[:1])
    assert artifact_store.list("dev/nobody/") == []
    assert all(artifact_store.exists(k) for k in first + second + others)


def test_a_missing_artifact_is_reported_as_not_found(artifact_store: ArtifactStore) -> None:
    key = artifact_store.artifact_key("acme", "job42", 1, "never-written.png", when=DAY)

    assert not artifact_store.exists(key)
    with pytest.raises(ArtifactNotFound) as caught:
        artifact_store.get_bytes(key)
    assert caught.value.key == key


def test_a_second_write_of_a_key_replaces_the_first(artifact_store: ArtifactStore) -> None:
    key = artifact_store.artifact_key("acme", "job42", 1, "manifest.json", when=DAY)

    artifact_store.put_bytes(key, b'{"v": 1}', "application/json")
    stored = artifact_store.put_bytes(key, b'{"v": 2}', "application/json")

    assert artifact_store.get_bytes(key) == b'{"v": 2}'
    assert stored.sha256 == hashlib.sha256(b'{"v": 2}').hexdigest()
    assert artifact_store.list(key) == [key]


def test_the_link_opens_the_artifact(artifact_store: ArtifactStore) -> None:
    key = artifact_store.artifact_key("acme", "job42", 1, "confirmation.png", when=DAY)
    artifact_store.put_bytes(key, PNG, "image/png")

    with urllib.request.urlopen(artifact_store.url(key), timeout=5) as response:
        assert response.read() == PNG


@pytest.mark.parametrize(
    "bad",
    [
        "../escape.png",
        "dev/acme/../../etc/passwd",
        "/dev/acme/x.png",
        "dev//acme/x.png",
        "dev/acme/.hidden",
        "dev/acme/with space.png",
        "prod/acme/2026-11-26/job42/attempt-1/x.png",  # another env's key
    ],
)
def test_keys_outside_the_env_or_the_layout_are_refused(
    artifact_store: ArtifactStore, bad: str
) -> None:
    with pytest.raises(InvalidArtifactKey):
        artifact_store.put_bytes(bad, b"x")
    with pytest.raises(InvalidArtifactKey):
        artifact_store.get_bytes(bad)


@pytest.mark.parametrize(
    ("oem", "job_id", "attempt", "name"),
    [
        ("../acme", "job42", 1, "x.png"),
        ("acme", "a/b", 1, "x.png"),
        ("acme", "job42", -1, "x"),
        ("acme", "job42", 1, "../x.png"),
        ("acme", "job42", 1, ""),
    ],
)
def test_key_parts_that_would_break_the_layout_are_refused(
    artifact_store: ArtifactStore, oem: str, job_id: str, attempt: int, name: str
) -> None:
    with pytest.raises(InvalidArtifactKey):
        artifact_store.artifact_key(oem, job_id, attempt, name, when=DAY)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
