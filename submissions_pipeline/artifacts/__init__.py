"""Evidence storage: the ArtifactStore interface with local-disk and S3 implementations.

Screenshots, traces, videos, step logs, failure objects and manifests are stored under
`{env}/{oem}/{YYYY-MM-DD}/{job_id}/attempt-{n}/{name}`. Which store a deployment uses is
configuration (the Dagster resource set), never a branch in the code that writes evidence.
"""

from submissions_pipeline.artifacts.base import (
    DEFAULT_CONTENT_TYPE,
    ArtifactNotFound,
    ArtifactStore,
    ArtifactStoreError,
    ArtifactStoreUnavailable,
    InvalidArtifactKey,
    StoredArtifact,
    guess_content_type,
)
from submissions_pipeline.artifacts.local import LocalArtifactStore
from submissions_pipeline.artifacts.s3 import MAX_PRESIGN_EXPIRY_S, S3ArtifactStore

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "MAX_PRESIGN_EXPIRY_S",
    "ArtifactNotFound",
    "ArtifactStore",
    "ArtifactStoreError",
    "ArtifactStoreUnavailable",
    "InvalidArtifactKey",
    "LocalArtifactStore",
    "S3ArtifactStore",
    "StoredArtifact",
    "guess_content_type",
]
