"""The S3 artifact store: evidence in a bucket, expired by a lifecycle rule, shared by links."""

from __future__ import annotations

import base64
import builtins
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from submissions_pipeline.artifacts.base import (
    DEFAULT_CONTENT_TYPE,
    ArtifactNotFound,
    ArtifactStore,
    ArtifactStoreUnavailable,
    StoredArtifact,
    guess_content_type,
)

# SigV4 presigned URLs cannot be valid for longer than this (S3 rejects them).
MAX_PRESIGN_EXPIRY_S = 7 * 24 * 3600
SHA256_METADATA_KEY = "sha256"  # sent as x-amz-meta-sha256, so the hash travels with the object

_CHUNK = 1024 * 1024
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_PRESIGN_HANDLER_ID = "submissions-artifacts-presign-sigv4"


class S3ArtifactStore(ArtifactStore):
    """Artifacts as objects in one bucket, under `{env}/…` keys.

    Expiry is the bucket's job: `ensure_bucket()` installs a lifecycle rule that expires
    everything under this env's prefix after `ttl_days`, so `purge_expired` does nothing here.
    Every object carries its SHA-256 as metadata and is uploaded with an S3 SHA-256 checksum, so
    S3 refuses a body that changed on the way. Links from `url()` are SigV4 presigned GETs.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        env: str = "dev",
        ttl_days: int = 30,
        presign_expiry_s: int = MAX_PRESIGN_EXPIRY_S,
    ):
        """`client`: a boto3 S3 client (in Dagster, `S3Resource(...).get_client()`).
        `bucket`: the bucket name. `presign_expiry_s`: default lifetime of links from `url()`,
        1 s to 7 days. See ArtifactStore for `env` and `ttl_days`.
        """
        super().__init__(env=env, ttl_days=ttl_days)
        self.client = client
        self.bucket = bucket
        self.presign_expiry_s = _check_expiry(presign_expiry_s)
        _presign_with_sigv4(client)

    @classmethod
    def from_endpoint(
        cls,
        endpoint_url: str | None,
        bucket: str,
        *,
        env: str = "dev",
        ttl_days: int = 30,
        presign_expiry_s: int = MAX_PRESIGN_EXPIRY_S,
        region_name: str = "us-east-1",
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 30.0,
        max_attempts: int = 3,
    ) -> S3ArtifactStore:
        """A store with its own client, for the CLI and tests.

        `endpoint_url`: an S3-compatible server (moto, MinIO), or None for AWS itself.
        Credentials left as None come from boto3's usual chain. `connect_timeout_s`,
        `read_timeout_s` and `max_attempts` (total tries per request, including the first) keep
        an unreachable store from stalling a worker: it fails fast with ArtifactStoreUnavailable
        and the job is retried later instead.
        """
        config = Config(
            signature_version="s3v4",
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            # Custom endpoints rarely serve virtual-host buckets (bucket.localhost).
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region_name,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
            config=config,
        )
        return cls(client, bucket, env=env, ttl_days=ttl_days, presign_expiry_s=presign_expiry_s)

    # -- bucket setup -------------------------------------------------------------------------

    @property
    def lifecycle_rule_id(self) -> str:
        """ID of this env's lifecycle rule; other rules in the bucket are left alone."""
        return f"expire-{self.env}-artifacts"

    def lifecycle_rule(self) -> dict[str, Any]:
        """The rule `ensure_bucket()` installs: expire `{env}/…` objects after `ttl_days`."""
        return {
            "ID": self.lifecycle_rule_id,
            "Filter": {"Prefix": f"{self.env}/"},
            "Status": "Enabled",
            "Expiration": {"Days": self.ttl_days},
        }

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing and put this env's lifecycle rule in place.

        Idempotent: run it at startup as often as you like. Rules of other envs (or anyone
        else's) in the same bucket are kept; only the rule with this env's ID is replaced.
        """
        with self._translated(None, "set up bucket"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _code(exc) not in _NOT_FOUND_CODES | {"NoSuchBucket"}:
                    raise
                self._create_bucket()
            rules = [r for r in self._lifecycle_rules() if r.get("ID") != self.lifecycle_rule_id]
            self.client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket,
                LifecycleConfiguration={"Rules": [*rules, self.lifecycle_rule()]},
            )

    def _create_bucket(self) -> None:
        region = self.client.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region and region != "us-east-1":  # us-east-1 refuses an explicit LocationConstraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as exc:
            if _code(exc) != "BucketAlreadyOwnedByYou":  # created meanwhile by another worker
                raise

    def _lifecycle_rules(self) -> builtins.list[dict[str, Any]]:
        try:
            config = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) == "NoSuchLifecycleConfiguration":
                return []
            raise
        return list(config.get("Rules", []))

    # -- writes -------------------------------------------------------------------------------

    def put_bytes(
        self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> StoredArtifact:
        """Upload `data` under `key` in one PUT."""
        self.check_key(key)
        digest = hashlib.sha256(data)
        return self._put(key, data, len(data), digest, content_type)

    def put_file(
        self, key: str, path: Path | str, content_type: str | None = None
    ) -> StoredArtifact:
        """Upload the file at `path` under `key` in one PUT (fine up to S3's 5 GB limit)."""
        self.check_key(key)
        digest, size = hashlib.sha256(), 0
        with open(path, "rb") as src:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
            src.seek(0)
            return self._put(key, src, size, digest, content_type or guess_content_type(path))

    def _put(
        self, key: str, body: Any, size: int, digest: Any, content_type: str
    ) -> StoredArtifact:
        with self._translated(None, f"put {key}"):
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                Metadata={SHA256_METADATA_KEY: digest.hexdigest()},
                ChecksumSHA256=base64.b64encode(digest.digest()).decode("ascii"),
            )
        return StoredArtifact(
            key=key,
            size=size,
            sha256=digest.hexdigest(),
            content_type=content_type,
            uri=f"s3://{self.bucket}/{key}",
        )

    # -- reads --------------------------------------------------------------------------------

    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; ArtifactNotFound if there is none."""
        self.check_key(key)
        with self._translated(key, f"get {key}"):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                return body.read()
            finally:
                body.close()

    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key` (one HEAD request)."""
        self.check_key(key)
        try:
            with self._translated(key, f"head {key}"):
                self.client.head_object(Bucket=self.bucket, Key=key)
        except ArtifactNotFound:
            return False
        return True

    def list(self, prefix: str) -> builtins.list[str]:
        """Keys starting with `prefix`, sorted."""
        self.check_prefix(prefix)
        keys: builtins.list[str] = []
        with self._translated(None, f"list {prefix}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(keys)

    def url(self, key: str, expires_s: int | None = None) -> str:
        """A presigned GET link valid for `expires_s` seconds (default `presign_expiry_s`).

        Signing is local: no request is made, and the link works only while the object exists.
        """
        self.check_key(key)
        expiry = self.presign_expiry_s if expires_s is None else _check_expiry(expires_s)
        with self._translated(None, f"sign {key}"):
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expiry
            )

    # -- TTL ----------------------------------------------------------------------------------

    def purge_expired(self, now: datetime) -> int:
        """Nothing to do: the bucket's lifecycle rule (see `ensure_bucket`) expires objects."""
        return 0

    # -- errors -------------------------------------------------------------------------------

    @contextmanager
    def _translated(self, key: str | None, action: str) -> Iterator[None]:
        """Turn boto errors into the store's: not found (when reading `key`) or unavailable."""
        try:
            yield
        except ClientError as exc:
            if key is not None and _code(exc) in _NOT_FOUND_CODES:
                raise ArtifactNotFound(key) from exc
            # Anything else (5xx, throttling, access denied, missing bucket) means evidence cannot
            # be stored now; the message names the S3 code so ops can tell which.
            raise ArtifactStoreUnavailable(
                f"S3 bucket {self.bucket!r}: cannot {action}: {_code(exc)} "
                f"{exc.response.get('Error', {}).get('Message', '')}".rstrip()
            ) from exc
        except ParamValidationError:
            raise  # a bug in the call, not the backend
        except BotoCoreError as exc:  # connection refused, timeouts, no credentials, …
            raise ArtifactStoreUnavailable(
                f"S3 bucket {self.bucket!r}: cannot {action}: {exc}"
            ) from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _check_expiry(expires_s: int) -> int:
    if isinstance(expires_s, bool) or not isinstance(expires_s, int):
        raise ValueError(f"link expiry must be whole seconds, got {expires_s!r}")
    if not 1 <= expires_s <= MAX_PRESIGN_EXPIRY_S:
        raise ValueError(f"link expiry must be 1..{MAX_PRESIGN_EXPIRY_S} s, got {expires_s}")
    return expires_s


def _presign_with_sigv4(client: Any) -> None:
    """Make presigned GETs SigV4 (X-Amz-Expires) on a client that did not choose a signer.

    botocore presigns with legacy SigV2 in us-east-1 unless the client was built with
    `signature_version="s3v4"`, and a client from `S3Resource.get_client()` is not; SigV2 links
    are refused by newer regions and carry no expiry duration. The handler runs before
    botocore's own default and changes nothing else the client does.
    """
    client.meta.events.register_first(
        "choose-signer.s3.GetObject", _sigv4_for_presigned_urls, unique_id=_PRESIGN_HANDLER_ID
    )


def _sigv4_for_presigned_urls(signature_version: Any, **_: Any) -> str | None:
    if isinstance(signature_version, str) and signature_version in {
        "s3-query",
        "s3v4-query",
        "v4-query",
    }:
        return "s3v4"
    return None
