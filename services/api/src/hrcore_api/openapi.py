"""Request bodies for the OpenAPI document, for the handlers that read the body
themselves (JSON or CSV, or an optional body): schemas and examples, from the specs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hrcore import MAX_BATCH_SIZE, TableSpec
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType

from hrcore_api.types import KEY_PATTERN, MAX_LOCATION, ErrorBody

_EXAMPLES: dict[str, dict[str, Any]] = {
    "departments": {"id": 1, "department": "Supply Chain"},
    "jobs": {"id": 1, "job": "Recruiter"},
    "hired_employees": {
        "id": 4535,
        "name": "Marcelo Gonzalez",
        "datetime": "2021-07-27T16:02:08Z",
        "department_id": 1,
        "job_id": 2,
    },
}
_VALUE = Schema(
    one_of=[
        Schema(type=OpenAPIType.NUMBER),  # an id of 1.5 is a rejected row, not a 400
        Schema(type=OpenAPIType.STRING),
        Schema(type=OpenAPIType.NULL),
    ]
)


_ERRORS = {
    400: "Bad input: a parameter, a body or a name that is not valid",
    401: "No valid 'Authorization: Bearer <token>' (when HRCORE_API_TOKEN is set)",
    404: "No such row, load or file",
    409: (
        "busy: another load or restore held the table or file longer than the lock wait;"
        " conflict: the backup cannot be restored. Nothing was changed"
    ),
    413: "The body is over the size limit (HRCORE_MAX_BODY_BYTES)",
    415: "A body other than application/json or text/csv",
    422: "The file is not UTF-8 CSV text (a UTF-16 file, say); nothing was loaded",
    503: (
        "The database or the CSV source does not answer, or the load failed or was"
        " cancelled (load_cancelled: the server is shutting down)"
    ),
}


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """The error answers a route can give, all ``{"error", "detail"}``."""
    return {
        status: ResponseSpec(data_container=ErrorBody, description=_ERRORS[status])
        for status in statuses
    }


def _with_body(body: RequestBody) -> type[Operation]:
    @dataclass
    class WithBody(Operation):
        def __post_init__(self) -> None:
            self.request_body = body

    return WithBody


def rows_operation(spec: TableSpec) -> type[Operation]:
    """``POST /{table}``: ``{"rows": [...]}`` (1 to 1000) or a CSV body."""
    example = _EXAMPLES[spec.name]
    row = Schema(
        type=OpenAPIType.OBJECT,
        properties=dict.fromkeys(spec.column_names, _VALUE),
        additional_properties=False,
    )
    rows = Schema(
        type=OpenAPIType.OBJECT,
        required=["rows"],
        properties={
            "rows": Schema(type=OpenAPIType.ARRAY, items=row, min_items=1, max_items=MAX_BATCH_SIZE)
        },
        additional_properties=False,
    )
    csv_line = ",".join(str(example[c]) for c in spec.column_names)
    return _with_body(
        RequestBody(
            required=True,
            description="1 to 1000 rows; fields as in the CSV file",
            content={
                "application/json": OpenAPIMediaType(schema=rows, example={"rows": [example]}),
                "text/csv": OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.STRING, min_length=1), example=csv_line + "\n"
                ),
            },
        )
    )


def batch_operation(spec: TableSpec, max_key: int) -> type[Operation]:
    """``POST /{table}/batch``: an optional body naming the file and the batch size.

    ``max_key``: the bytes a key may have, what the source's own name leaves of the
    1024 bytes a location may have.
    """
    options = Schema(
        type=OpenAPIType.OBJECT,
        properties={
            "key": Schema(
                type=OpenAPIType.STRING,
                min_length=1,
                max_length=max_key,
                pattern=KEY_PATTERN,
                description=(
                    "file inside the configured source: a relative name (no '..' part,"
                    f" no leading '/', no scheme), at most {max_key} bytes of UTF-8; a file"
                    " named for another table (departments.csv for /jobs/batch) is a 400"
                ),
            ),
            "batch_size": Schema(type=OpenAPIType.INTEGER, minimum=1, maximum=MAX_BATCH_SIZE),
        },
        additional_properties=False,
    )
    example = {"key": spec.file_name, "batch_size": MAX_BATCH_SIZE}
    return _with_body(
        RequestBody(
            required=False,
            content={"application/json": OpenAPIMediaType(schema=options, example=example)},
        )
    )


RESTORE_OPERATION = _with_body(
    RequestBody(
        required=True,
        content={
            "application/json": OpenAPIMediaType(
                schema=Schema(
                    type=OpenAPIType.OBJECT,
                    required=["uri"],
                    properties={
                        "uri": Schema(
                            type=OpenAPIType.STRING,
                            min_length=1,
                            max_length=MAX_LOCATION,
                            description="one of the uris of GET /backups/{table}",
                        )
                    },
                    additional_properties=False,
                ),
                example={"uri": "s3://hrcore-data/backups/jobs-20261130T120000000000Z.avro"},
            )
        },
    )
)
