"""The ArtifactStore interface: where evidence lives, how its keys are laid out, and its errors."""

from __future__ import annotations

import builtins
import mimetypes
import re
from abc import ABC, abstractmethod
from datetime import date, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from submissions_pipeline.domain.reasons import ReasonCode
from submissions_pipeline.links import DEFAULT_CONSOLE_URL, job_page_url

DEFAULT_CONTENT_TYPE = "application/octet-stream"
#: Files a TTL sweep keeps: an attempt's manifest (names, sizes, SHA-256s) and its verified
#: bundle are tiny and hold no personal data, and with them the console can still say what
#: the evidence was after the files themselves expired.
KEPT_PAST_TTL = frozenset({"manifest.json", "bundle.json"})

# One key segment: starts with a letter or digit, so it can never be "", ".", ".." or a hidden
# temp file of the local store; no spaces or other characters that need URL quoting in a link.
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

# Types Python's table does not know everywhere but evidence uses (Playwright traces, step logs).
_EXTRA_TYPES = {".webm": "video/webm", ".zip": "application/zip", ".jsonl": "application/jsonl"}


class ArtifactStoreError(Exception):
    """Base of the artifact store's errors."""


class ArtifactStoreUnavailable(ArtifactStoreError):
    """The backend could not store or serve the artifact (unreachable, full, refused, timed out).

    The caller records it as `reason_code` and the job is retried later with backoff.
    """

    reason_code = ReasonCode.STORAGE_UNAVAILABLE


class ArtifactNotFound(ArtifactStoreError, LookupError):
    """No artifact under that key."""

    def __init__(self, key: str):
        super().__init__(f"no artifact at {key!r}")
        self.key = key


class InvalidArtifactKey(ArtifactStoreError, ValueError):
    """A key (or one of the parts it is built from) is malformed or outside the store's env."""


class StoredArtifact(BaseModel):
    """What a successful write returns: enough to cite the artifact in an evidence manifest."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(description="Key inside the store, starting with the env prefix.")
    size: int = Field(ge=0, description="Bytes written.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the bytes written.")
    content_type: str
    uri: str = Field(
        description="Durable location (file:// or s3://); a clickable link comes from url()."
    )


def guess_content_type(path: Path | str) -> str:
    """The MIME type for a file name, or application/octet-stream."""
    suffix = Path(path).suffix.lower()
    if suffix in _EXTRA_TYPES:
        return _EXTRA_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(str(path))
    return guessed or DEFAULT_CONTENT_TYPE


def _check_segment(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SEGMENT.fullmatch(value):
        raise InvalidArtifactKey(
            f"{what} {value!r} must be letters, digits, '.', '_' or '-', starting with a letter "
            "or digit"
        )
    return value


class ArtifactStore(ABC):
    """Evidence storage keyed `{env}/{oem}/{YYYY-MM-DD}/{job_id}/attempt-{n}/{name}`.

    Every key a store accepts lies under its own env prefix, so one bucket or folder can hold
    dev, stage and prod side by side and the TTL of one env never touches another. Writes of an
    existing key replace it (last writer wins), which keeps re-runs of evidence steps idempotent.
    """

    #: Base URL of the ops console that serves this store's evidence to people; links handed
    #: out (CRM, Dagster metadata) point at its job pages, which outlive any file path or
    #: presigned URL. Set by the resource from the settings.
    console_url: str = DEFAULT_CONSOLE_URL

    def __init__(self, env: str = "dev", ttl_days: int = 30):
        """`env`: key prefix naming the environment ("dev", "stage", "prod").
        `ttl_days`: how long artifacts are kept before they expire (whole days, at least 1).
        """
        self.env = _check_segment(env, "env")
        if isinstance(ttl_days, bool) or not isinstance(ttl_days, int) or ttl_days < 1:
            raise ValueError(f"ttl_days must be a whole number of days >= 1, got {ttl_days!r}")
        self.ttl_days = ttl_days

    def job_link(self, job_id: str, *, attempt: int | None = None) -> str:
        """The lasting link to a job's evidence: its page in the ops console."""
        return job_page_url(self.console_url, job_id, attempt=attempt)

    # -- keys ---------------------------------------------------------------------------------

    def artifact_key(self, oem: str, job_id: str, attempt: int, name: str, *, when: date) -> str:
        """The key of one artifact of one attempt of one job.

        `when` is the date directory (a datetime's own calendar date is used); pass the same
        date for every attempt of a job (e.g. the day it was enqueued) so a job's evidence stays
        under one prefix. `name` may contain "/" to group files ("screenshots/pre_submit.png").
        """
        return self.job_prefix(oem, job_id, when=when, attempt=attempt) + self._check_name(name)

    def job_prefix(self, oem: str, job_id: str, *, when: date, attempt: int | None = None) -> str:
        """The prefix (ending in "/") of a job's artifacts, or of one attempt's, for `list()`."""
        if not isinstance(when, date):
            raise InvalidArtifactKey(f"when must be a date, got {when!r}")
        prefix = (
            f"{self.env}/{_check_segment(oem, 'oem')}/{when:%Y-%m-%d}/"
            f"{_check_segment(job_id, 'job_id')}/"
        )
        if attempt is None:
            return prefix
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
            raise InvalidArtifactKey(f"attempt must be an int >= 0, got {attempt!r}")
        return f"{prefix}attempt-{attempt}/"

    def check_key(self, key: str) -> str:
        """Return `key` if it is well formed and under this store's env, else raise."""
        if not isinstance(key, str) or not key.startswith(f"{self.env}/"):
            raise InvalidArtifactKey(f"key {key!r} is not under this store's env {self.env!r}")
        self._check_name(key)
        return key

    def check_prefix(self, prefix: str) -> str:
        """Return `prefix` if it is under this store's env and could begin a valid key."""
        if not isinstance(prefix, str) or not prefix.startswith(f"{self.env}/"):
            raise InvalidArtifactKey(
                f"prefix {prefix!r} is not under this store's env {self.env!r}"
            )
        *dirs, tail = prefix.split("/")
        for part in dirs:
            _check_segment(part, f"key segment in prefix {prefix!r}:")
        if tail:
            _check_segment(tail, f"last segment of prefix {prefix!r}:")
        return prefix

    @staticmethod
    def _check_name(name: str) -> str:
        if not isinstance(name, str) or not name:
            raise InvalidArtifactKey(f"artifact name {name!r} must be a non-empty string")
        for part in name.split("/"):
            _check_segment(part, f"key segment in {name!r}:")
        return name

    # -- storage ------------------------------------------------------------------------------

    @abstractmethod
    def put_bytes(
        self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> StoredArtifact:
        """Store `data` under `key` (replacing any previous artifact there)."""

    @abstractmethod
    def put_file(
        self, key: str, path: Path | str, content_type: str | None = None
    ) -> StoredArtifact:
        """Store the file at `path` under `key`; the content type is guessed from its name."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The artifact's bytes; ArtifactNotFound if there is none."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an artifact is stored under `key`."""

    @abstractmethod
    def list(self, prefix: str) -> builtins.list[str]:
        """Keys starting with `prefix` (a plain string prefix, e.g. from `job_prefix`), sorted."""

    @abstractmethod
    def url(self, key: str, expires_s: int | None = None) -> str:
        """A link a human can open. It does not check that the artifact exists.

        `expires_s` bounds how long the link works where the backend signs links (S3);
        None means the store's default.
        """

    @abstractmethod
    def purge_expired(self, now: datetime) -> int:
        """Delete what is past the TTL where the backend does not expire objects itself,
        keeping the `KEPT_PAST_TTL` files.

        Returns how many artifacts were deleted.
        """
