"""The job store and global queue (SQLAlchemy Core + Alembic); the only code that writes SQL."""

from submissions_pipeline.store.job_store import (
    EnqueueResult,
    JobNotFound,
    JobStore,
    LeaseLost,
    QueueStats,
    StaleState,
    StoreError,
)

__all__ = [
    "EnqueueResult",
    "JobNotFound",
    "JobStore",
    "LeaseLost",
    "QueueStats",
    "StaleState",
    "StoreError",
]
