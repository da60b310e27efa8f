"""S3 fixtures live in the root conftest; the server class in servers.py (kept importable here)."""

from submissions_pipeline_tests.servers import (  # noqa: F401
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    MotoServer,
    new_bucket_name,
)
