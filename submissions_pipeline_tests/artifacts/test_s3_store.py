"""The S3 store against moto's S3 server: expiry rule, signed links, metadata, outages."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from dagster_aws.s3 import S3Resource

from submissions_pipeline.artifacts import ArtifactStoreUnavailable, S3ArtifactStore
from submissions_pipeline.domain import ReasonCode
from submissions_pipeline_tests.artifacts.conftest import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    MotoServer,
    new_bucket_name,
)

DAY = date(2026, 11, 26)


def _rules(client: Any, bucket: str) -> dict[str, dict[str, Any]]:
    config = client.get_bucket_lifecycle_configuration(Bucket=bucket)
    return {rule["ID"]: rule for rule in config["Rules"]}


def test_ensure_bucket_installs_an_expiry_rule_for_the_env_prefix(moto_s3_client: Any) -> None:
    bucket = new_bucket_name()
    moto_s3_client.create_bucket(Bucket=bucket)
    foreign = {"ID": "keep-audit-exports", "Filter": {"Prefix": "exports/"}, "Status": "Enabled",
               "Expiration": {"Days": 365}}  # fmt: skip
    moto_s3_client.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [foreign]}
    )
    stage = S3ArtifactStore(moto_s3_client, bucket, env="stage", ttl_days=14)
    prod = S3ArtifactStore(moto_s3_client, bucket, env="prod", ttl_days=90)

    stage.ensure_bucket()
    stage.ensure_bucket()  # idempotent
    prod.ensure_bucket()

    rules = _rules(moto_s3_client, bucket)
    assert set(rules) == {"keep-audit-exports", "expire-stage-artifacts", "expire-prod-artifacts"}
    assert rules["expire-stage-artifacts"]["Filter"] == {"Prefix": "stage/"}
    assert rules["expire-stage-artifacts"]["Expiration"] == {"Days": 14}
    assert rules["expire-stage-artifacts"]["Status"] == "Enabled"
    assert rules["expire-prod-artifacts"]["Filter"] == {"Prefix": "prod/"}
    assert rules["expire-prod-artifacts"]["Expiration"] == {"Days": 90}


def test_a_changed_ttl_replaces_the_env_rule(moto_s3_client: Any) -> None:
    bucket = new_bucket_name()
    S3ArtifactStore(moto_s3_client, bucket, env="dev", ttl_days=30).ensure_bucket()

    S3ArtifactStore(moto_s3_client, bucket, env="dev", ttl_days=7).ensure_bucket()

    rules = _rules(moto_s3_client, bucket)
    assert list(rules) == ["expire-dev-artifacts"]
    assert rules["expire-dev-artifacts"]["Expiration"] == {"Days": 7}


def test_expiry_is_left_to_the_bucket_rule(s3_store: S3ArtifactStore) -> None:
    key = s3_store.artifact_key("acme", "job42", 1, "pre_submit.png", when=DAY)
    s3_store.put_bytes(key, b"png")

    assert s3_store.purge_expired(datetime(2030, 1, 1, tzinfo=UTC)) == 0
    assert s3_store.exists(key)


def test_links_carry_the_configured_expiry_and_serve_the_bytes(moto_s3_client: Any) -> None:
    store = S3ArtifactStore(moto_s3_client, new_bucket_name(), presign_expiry_s=3600)
    store.ensure_bucket()
    key = store.artifact_key("acme", "job42", 1, "confirmation.png", when=DAY)
    store.put_bytes(key, b"\x89PNG confirmation", "image/png")

    default_link = store.url(key)
    short_link = store.url(key, expires_s=120)

    assert _expires(default_link) == 3600
    assert _expires(short_link) == 120
    response = requests.get(default_link, timeout=5)
    assert response.status_code == 200
    assert response.content == b"\x89PNG confirmation"
    assert response.headers["Content-Type"] == "image/png"


def test_links_longer_than_sigv4_allows_are_refused(s3_store: S3ArtifactStore) -> None:
    key = s3_store.artifact_key("acme", "job42", 1, "x.png", when=DAY)

    assert _expires(s3_store.url(key, expires_s=7 * 24 * 3600)) == 7 * 24 * 3600
    with pytest.raises(ValueError):
        s3_store.url(key, expires_s=7 * 24 * 3600 + 1)
    with pytest.raises(ValueError):
        S3ArtifactStore(s3_store.client, s3_store.bucket, presign_expiry_s=30 * 24 * 3600)


def test_the_sha256_travels_with_the_object(s3_store: S3ArtifactStore) -> None:
    key = s3_store.artifact_key("acme", "job42", 1, "steps.jsonl", when=DAY)
    stored = s3_store.put_bytes(key, b'{"step": "login"}\n', "application/jsonl")

    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=key)

    assert head["Metadata"]["sha256"] == stored.sha256
    assert stored.sha256 == hashlib.sha256(b'{"step": "login"}\n').hexdigest()
    assert head["ContentType"] == "application/jsonl"
    assert stored.uri == f"s3://{s3_store.bucket}/{key}"


def test_a_client_from_dagsters_s3_resource_works_with_the_store(moto_s3: MotoServer) -> None:
    client = S3Resource(
        endpoint_url=moto_s3.endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ).get_client()
    store = S3ArtifactStore(client, new_bucket_name(), env="prod", presign_expiry_s=900)

    store.ensure_bucket()
    key = store.artifact_key("acme", "job42", 1, "manifest.json", when=DAY)
    store.put_bytes(key, b'{"ok": true}', "application/json")

    assert store.get_bytes(key) == b'{"ok": true}'
    assert store.list("prod/acme/") == [key]
    link = store.url(key)  # SigV4 although the resource's client did not ask for it
    assert _expires(link) == 900
    assert requests.get(link, timeout=5).content == b'{"ok": true}'
    assert "expire-prod-artifacts" in _rules(client, store.bucket)


def test_a_stopped_server_makes_the_store_unavailable_quickly(
    moto_s3_disposable: MotoServer,
) -> None:
    store = moto_s3_disposable.store()
    key = store.artifact_key("acme", "job42", 1, "pre_submit.png", when=DAY)
    store.put_bytes(key, b"before the outage")

    moto_s3_disposable.stop()

    started = time.monotonic()
    with pytest.raises(ArtifactStoreUnavailable) as caught:
        store.put_bytes(key, b"during the outage")
    # from_endpoint's defaults: 2 s connect timeout, 3 tries with a short jittered backoff
    assert time.monotonic() - started < 5
    assert caught.value.reason_code is ReasonCode.STORAGE_UNAVAILABLE
    for read in (store.get_bytes, store.exists, store.list):
        with pytest.raises(ArtifactStoreUnavailable):
            read(key)
    with pytest.raises(ArtifactStoreUnavailable):
        store.ensure_bucket()


def _expires(link: str) -> int:
    query = parse_qs(urlparse(link).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    return int(query["X-Amz-Expires"][0])
