"""schemathesis against the OpenAPI document the API serves at /schema/openapi.json:
every operation, with the token, on a real server process on loopback, over the test
database and moto's S3 server. No answer is a 5xx; every answer conforms to its
documented status codes, content type, headers and schema. Deterministic
(derandomized) and bounded (a fixed number of examples per operation)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import hrcore
import httpx
import pytest
import schemathesis
from hrcore_api import create_app
from hrcore_api.settings import Settings
from hrcore_api.types import TABLE_PATHS
from hypothesis import HealthCheck, assume, settings
from litestar.testing import TestClient
from schemathesis.specs.openapi.checks import negative_data_rejection

from tests.conftest import DATA_TABLES, LEDGER_TABLES, REFERENCE_CSV, query, upload, write
from tests.test_api import serve

TOKEN = "fuzz-t0ken"
BUCKET = "hrcore-fuzz"  # fixed: the document says how long a key may be in it
SEED = 20261201
EXAMPLES = 10  # per operation and phase: the whole run near 90 s, CI under 20 minutes
FILES = {
    **REFERENCE_CSV,
    "hired_employees.csv": "1,Ann,2021-03-01T10:00:00Z,1,2\n2,Bo,2021-07-01T00:00:00Z,2,1\n",
}


def served_document() -> dict[str, Any]:
    """/schema/openapi.json as the app serves it (the document needs no database)."""
    settings = Settings(
        database_url="postgresql://u@127.0.0.1:1/x", s3_bucket=BUCKET, api_token=TOKEN
    )
    with TestClient(app=create_app(settings)) as client:
        document: dict[str, Any] = client.get("/schema/openapi.json").json()
    return document


# loaded when the module is collected: schemathesis makes one test per operation
DOCUMENT = served_document()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config(seed=SEED))


@pytest.fixture(scope="module")
def server(
    database: str, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``hrcore-api`` on loopback, with the token: the test database emptied, then
    departments and jobs 1-3 loaded; a bucket holding the three files."""
    query(database, f"TRUNCATE {', '.join(DATA_TABLES + LEDGER_TABLES)} RESTART IDENTITY CASCADE")
    folder = tmp_path_factory.mktemp("fuzz")
    for name in REFERENCE_CSV:
        hrcore.load(write(folder, name, FILES[name]), database_url=database)
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=BUCKET)
    for name, text in FILES.items():
        upload(s3_endpoint, BUCKET, name, write(folder, name, text))
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "S3_BUCKET_NAME": BUCKET,
        "HRCORE_API_TOKEN": TOKEN,
    }
    with (folder / "server.log").open("w+") as log:
        process, base = serve(env, log=log)
        try:
            yield base
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_the_fuzzed_document_is_the_one_the_server_serves(server: str) -> None:
    assert httpx.get(f"{server}/schema/openapi.json").json() == DOCUMENT


def breaks_a_key_rule(key: object, path: str) -> bool:
    """A key that ``POST /{table}/batch`` refuses: outside the source, or the file of
    another table."""
    if not isinstance(key, str) or not path.endswith("/batch"):
        return False
    table = hrcore.get_table(TABLE_PATHS[path.split("/")[1]])
    others = {spec.file_name for spec in hrcore.TABLES.values()} - {table.file_name}
    parts = key.split("/")
    return key.startswith("/") or "://" in key or ".." in parts or parts[-1] in others


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case: schemathesis.Case[Any], server: str) -> None:
    # the rules of a key that its description states and JSON Schema cannot: such a
    # key is a 400 (tested in test_api.py), which is not what this test is about
    assume(not (isinstance(case.body, dict) and breaks_a_key_rule(case.body.get("key"), case.path)))
    # A text/csv body is text whatever schemathesis generated for it (an object is sent
    # as "{}"), so "a body of the wrong type was accepted" cannot happen on the wire:
    # such a body is CSV text like any other, and its lines are answered as rows.
    text = case.media_type == "text/csv"
    case.call_and_validate(
        base_url=server,
        headers={"authorization": f"Bearer {TOKEN}"},
        excluded_checks=[negative_data_rejection] if text else None,
        timeout=60,
    )
