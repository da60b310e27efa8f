"""The job store and global queue (SQLAlchemy Core + Alembic); the only code that writes SQL."""

from submissions_pipeline.store.errors import JobNotFound, LeaseLost, StaleState, StoreError
from submissions_pipeline.store.job_store import DEFAULT_LEASE_S, JobStore
from submissions_pipeline.store.models import EnqueueResult, JobSearch, QueueStats

__all__ = [
    "DEFAULT_LEASE_S",
    "EnqueueResult",
    "JobNotFound",
    "JobSearch",
    "JobStore",
    "LeaseLost",
    "QueueStats",
    "StaleState",
    "StoreError",
]
