"""Settings, read from the environment when the app is built (never at import)."""

from __future__ import annotations

import os
import posixpath

import msgspec
from hrcore import SAMPLE_FOLDER


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """What the service needs to know; every field has an environment variable."""

    database_url: str | None = None  # DATABASE_URL; None: the embedded server
    read_database_url: str | None = None  # HRCORE_READ_DATABASE_URL: a read replica's
    read_max_lag: float = 30.0  # HRCORE_READ_MAX_LAG: seconds behind before reads leave it
    s3_bucket: str | None = None  # S3_BUCKET_NAME; None: the bundled sample folder
    s3_prefix: str = ""  # S3_PREFIX: where in the bucket the CSV files are
    api_token: str | None = None  # HRCORE_API_TOKEN; None: writes are open
    max_body_bytes: int = 2 * 1024 * 1024  # HRCORE_MAX_BODY_BYTES
    pool_size: int = 8  # HRCORE_POOL_SIZE: database connections at most, reused

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            read_database_url=env.get("HRCORE_READ_DATABASE_URL") or None,
            read_max_lag=float(env.get("HRCORE_READ_MAX_LAG", 30.0)),
            s3_bucket=env.get("S3_BUCKET_NAME") or None,
            s3_prefix=env.get("S3_PREFIX", "").strip("/"),
            api_token=env.get("HRCORE_API_TOKEN") or None,
            max_body_bytes=int(env.get("HRCORE_MAX_BODY_BYTES", 2 * 1024 * 1024)),
            pool_size=int(env.get("HRCORE_POOL_SIZE", 8)),
        )

    @property
    def source(self) -> str:
        """Where the tables' CSV files are: the bucket (and prefix), or the sample folder."""
        if self.s3_bucket:
            prefix = f"{self.s3_prefix}/" if self.s3_prefix else ""
            return f"s3://{self.s3_bucket}/{prefix}"
        return str(SAMPLE_FOLDER)

    def location(self, key: str) -> str:
        """Where the file ``key`` of the source is."""
        source = self.source
        return source + key if source.startswith("s3://") else posixpath.join(source, key)

    @property
    def backups(self) -> str:
        return f"s3://{self.s3_bucket}/backups/" if self.s3_bucket else "backups"
