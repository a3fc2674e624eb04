"""Route handlers: parse the request, call the library (off the event loop), answer."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

import anyio.to_thread
import hrcore
import msgspec
from litestar import Request, Response, get, post
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.params import PathParameter, QueryParameter

from hrcore_api.openapi import RESTORE_OPERATION, batch_operation, errors, rows_operation
from hrcore_api.security import PUBLIC
from hrcore_api.settings import Settings
from hrcore_api.types import (
    MAX_LOCATION,
    TABLE_PATHS,
    BatchRequest,
    Items,
    Page,
    RawPage,
    RestoreRequest,
    TableName,
    rows_type,
)

log = logging.getLogger("hrcore_api.loads")

Limit = Annotated[
    int, QueryParameter(ge=1, le=hrcore.MAX_BATCH_SIZE, description="page size, 1 to 1000")
]
Year = Annotated[int, QueryParameter(ge=1, le=9999, description="year of hire (UTC), 1 to 9999")]
# ids and cursors up to 2**53 - 1: the largest integer every JSON reader keeps exact
# (RFC 7493 I-JSON); tools that read the document's bounds as floats (schemathesis,
# JavaScript) cannot tell 2**63 - 1 from 2**63 + 191. Rows have integer ids, and no
# load id comes near it
BIGGEST = 2**53 - 1
# gt=-1 rather than ge=0: Litestar leaves a minimum of 0 out of the OpenAPI document
After = Annotated[
    int | None, QueryParameter(gt=-1, le=BIGGEST, description="the last id of the previous page")
]
Before = Annotated[
    int | None,
    QueryParameter(ge=1, le=BIGGEST, description="the last load id of the previous page"),
]
AfterLine = Annotated[
    int, QueryParameter(gt=-1, le=BIGGEST, description="the last line number of the previous page")
]
Id = Annotated[int, PathParameter(gt=-1, le=BIGGEST)]
Table = Annotated[TableName, PathParameter(description="a table's path or name")]


def _log_load(kind: str, table: str, outcome: dict[str, Any]) -> None:
    log.info(json.dumps({"event": kind, "table": table, **outcome}, default=str))


def _decode(body: bytes, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(body, type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValidationException(f"malformed body: {exc}") from exc


def _safe_key(key: str) -> str:
    """A key inside the configured bucket/prefix: no scheme, no absolute path, no '..'."""
    parts = key.split("/")
    if not key or "://" in key or key.startswith("/") or "\\" in key or ".." in parts:
        raise ValidationException(
            f"key must be a relative name inside the configured source, not {key!r}"
        )
    return key


def _read_url(reads: hrcore.ConnectionPool) -> str:
    """Where a read with a connection of its own (a backup) goes: as ``reads`` lends."""
    return reads.read_url() if isinstance(reads, hrcore.ReplicaPool) else reads.url


def service_routes(
    settings: Settings, pool: hrcore.ConnectionPool, reads: hrcore.ConnectionPool
) -> list[HTTPRouteHandler]:
    """The routes that are not about one table. Writes, and reads that must see the
    caller's own writes (a load's status), borrow from ``pool`` (the writer); other
    reads from ``reads`` (a replica, when there is one); backups and restores open
    connections of their own."""
    db = pool.url

    @get("/", opt=PUBLIC, summary="What this service is")
    async def index() -> dict[str, Any]:
        return {
            "name": "hrcore",
            "version": _version(),
            "token_required": bool(settings.api_token),
            "links": {
                "console": "/console",
                "openapi": "/schema/openapi.json",
                "health": ["/health-db", "/health-s3"],
                "tables": [f"/{p}" for p in TABLE_PATHS],
                "metrics": ["/metrics/hires-by-quarter", "/metrics/departments-above-mean"],
                "loads": "/loads",
            },
        }

    @get(
        "/health-db",
        opt=PUBLIC,
        sync_to_thread=True,
        summary="Runs a query on the database",
        responses=errors(503),
    )
    def health_db() -> dict[str, Any]:
        try:
            version = hrcore.check_database(pool=pool)
        except hrcore.DatabaseError as exc:  # public route: say no more than that
            log.warning(json.dumps({"event": "health-db", "error": hrcore.redact(str(exc), db)}))
            raise hrcore.DatabaseError("the database does not answer") from exc
        answer: dict[str, Any] = {"status": "ok", "server_version": version, "reads": "writer"}
        if isinstance(reads, hrcore.ReplicaPool):
            state = reads.state()
            answer["reads"] = state.reads_go_to
            answer["replica"] = {"status": state.status, "lag_seconds": state.lag_seconds}
            if state.error:
                said = hrcore.redact(state.error, reads.url)
                log.warning(
                    json.dumps({"event": "health-db", "replica": state.status, "error": said})
                )
        return answer

    @get(
        "/health-s3",
        opt=PUBLIC,
        sync_to_thread=True,
        summary="Lists the CSV source's files",
        responses=errors(503),
    )
    def health_s3() -> dict[str, Any]:
        source = settings.source
        try:
            files = hrcore.list_files(source)
        except (hrcore.SourceNotFoundError, hrcore.SourceUnavailableError) as exc:
            raise hrcore.SourceUnavailableError(str(exc)) from exc  # a missing bucket too
        return {"status": "ok", "source": source, "files": msgspec.to_builtins(files)}

    @get(
        "/metrics/hires-by-quarter",
        sync_to_thread=True,
        summary="Hires per department and job by quarter",
        responses=errors(400, 401, 503),
    )
    def hires_by_quarter(request: Request[Any, Any, Any], year: Year = 2021) -> Any:
        frame = hrcore.hires_by_quarter(year, pool=reads)
        return _frame_response(request, frame, lambda: hrcore.hires_by_quarter_chart(frame, year))

    @get(
        "/metrics/departments-above-mean",
        sync_to_thread=True,
        summary="Departments hiring above the mean",
        responses=errors(400, 401, 503),
    )
    def departments_above_mean(request: Request[Any, Any, Any], year: Year = 2021) -> Any:
        frame = hrcore.departments_above_mean(year, pool=reads)

        def chart() -> str:
            return hrcore.above_mean_chart(frame, hrcore.mean_hires(year, pool=reads), year)

        return _frame_response(request, frame, chart)

    @get(
        "/loads",
        sync_to_thread=True,
        summary="The load ledger, newest first",
        responses=errors(400, 401, 503),
    )
    def loads(limit: Limit = 100, before: Before = None) -> Page:
        found = hrcore.list_loads(limit=limit, before=before, pool=reads)
        more = f"/loads?limit={limit}&before={found[-1].load_id}" if len(found) == limit else None
        return Page(items=found, next=more)

    @get(
        "/loads/{load_id:int}",
        sync_to_thread=True,
        summary="One load's report",
        responses=errors(400, 401, 404, 503),
    )
    def load(load_id: Id) -> hrcore.LoadReport:
        return hrcore.get_load(load_id, pool=pool)

    @get(
        "/loads/{load_id:int}/rejections",
        sync_to_thread=True,
        summary="A load's rejected rows",
        responses=errors(400, 401, 404, 503),
    )
    def rejections(
        request: Request[Any, Any, Any], load_id: Id, limit: Limit = 100, after: AfterLine = 0
    ) -> Any:
        if _media(request, SVG) == SVG:  # all of the load's rejected rows, counted by reason
            return _varied(hrcore.rejections_chart(hrcore.get_load(load_id, pool=reads)), SVG)
        found = hrcore.list_rejections(load_id, limit=limit, after_line=after, pool=reads)
        more = (
            f"/loads/{load_id}/rejections?limit={limit}&after={found[-1].line_number}"
            if len(found) == limit
            else None
        )
        return _varied(Page(items=found, next=more))

    @post(
        "/backups/{table:str}",
        status_code=201,
        sync_to_thread=True,
        summary="Back a table up to AVRO",
        responses=errors(400, 401, 404, 503),
    )
    def backup(table: Table) -> hrcore.Backup:
        return hrcore.backup(_table(table), to=settings.backups, database_url=_read_url(reads))

    @get(
        "/backups/{table:str}",
        sync_to_thread=True,
        summary="A table's backup files",
        responses=errors(400, 401, 404, 503),
    )
    def backups(table: Table) -> Items:
        return Items(items=hrcore.list_backups(_table(table), location=settings.backups))

    @post(
        "/restores/{table:str}",
        status_code=200,
        summary="Replace a table with a backup",
        operation_class=RESTORE_OPERATION,
        responses=errors(400, 401, 404, 409, 413, 503),
    )
    async def restore(table: Table, request: Request[Any, Any, Any]) -> hrcore.Backup:
        wanted = _decode(await request.body(), RestoreRequest)

        def listed_then_restored() -> hrcore.Backup:  # both off the event loop
            known = {f.uri for f in hrcore.list_backups(_table(table), location=settings.backups)}
            if wanted.uri not in known:
                raise hrcore.NotFoundError(
                    f"{wanted.uri} is not one of the backups of {table} (GET /backups/{table})"
                )
            return hrcore.restore(_table(table), from_=wanted.uri, database_url=db)

        done = await anyio.to_thread.run_sync(listed_then_restored)
        _log_load("restore", done.table, msgspec.to_builtins(done))
        return done

    return [
        index, health_db, health_s3, hires_by_quarter, departments_above_mean,
        loads, load, rejections, backup, backups, restore,
    ]  # fmt: skip


def _table(path: str) -> str:
    return hrcore.get_table(TABLE_PATHS.get(path, path)).name


JSON, CSV, SVG = "application/json", "text/csv", "image/svg+xml"


def _media(request: Request[Any, Any, Any], *other: str) -> str:
    """Of JSON (the default) and ``other``, the one the request's Accept prefers."""
    return request.accept.best_match([JSON, *other], default=JSON)


def _varied(content: Any, media: str = JSON) -> Response[Any]:
    """An answer whose body depends on the request's Accept, as caches are told."""
    return Response(content, media_type=media, headers={"Vary": "Accept"})


def _frame_response(request: Request[Any, Any, Any], frame: Any, chart: Callable[[], str]) -> Any:
    """The frame as JSON items; as CSV for ``Accept: text/csv``; as its chart (SVG, the
    same numbers) for ``Accept: image/svg+xml``."""
    media = _media(request, CSV, SVG)
    if media == CSV:
        return _varied(frame.write_csv(), CSV)
    if media == SVG:
        return _varied(chart(), SVG)
    return _varied(Items(items=frame.to_dicts()))


def _json(content: Any) -> Response[Any]:
    """An answer whose body is encoded here (it holds JSON made by PostgreSQL)."""
    return Response(msgspec.json.encode(content), media_type="application/json")


def _version() -> str:
    from importlib.metadata import version

    return version("hrcore")


def table_routes(
    settings: Settings,
    pool: hrcore.ConnectionPool,
    reads: hrcore.ConnectionPool,
    path: str,
    table: str,
) -> list[HTTPRouteHandler]:
    """The routes of one table: queue a load of its file, add rows (on ``pool``, the
    writer), list and get rows (on ``reads``)."""
    spec = hrcore.get_table(table)
    body_type = rows_type(spec)
    db = pool.url
    name = path.replace("-", "_")

    async def load_file(request: Request[Any, Any, Any]) -> Response[hrcore.LoadReport]:
        raw = await request.body()
        options = _decode(raw, BatchRequest) if raw.strip() else BatchRequest()
        key = spec.file_name if options.key is msgspec.UNSET else _safe_key(options.key)
        queued = await anyio.to_thread.run_sync(
            partial(
                hrcore.enqueue,
                settings.location(key),
                table=spec.name,
                batch_size=int(options.batch_size),
                database_url=db,
            )
        )
        _log_load("queued", spec.name, queued.to_dict())
        return Response(queued, status_code=202, headers={"Location": f"/loads/{queued.load_id}"})

    async def add_rows(request: Request[Any, Any, Any]) -> hrcore.RowsReport:
        media = request.content_type[0]
        raw = await request.body()
        rows: list[dict[str, Any]] | bytes
        if media in ("application/json", ""):
            rows = [msgspec.structs.asdict(r) for r in _decode(raw, body_type).rows]
        elif media == "text/csv":
            rows = raw  # bytes: a byte that is not UTF-8 is a rejected row, as in a file
        else:
            raise HTTPException(
                status_code=415, detail=f"send application/json or text/csv, not {media}"
            )
        report = await anyio.to_thread.run_sync(
            partial(hrcore.load_rows, spec.name, rows, pool=pool)
        )
        _log_load(
            "rows", spec.name, {**msgspec.to_builtins(report), "rejected": len(report.rejected)}
        )
        return report

    # rows go out as the JSON PostgreSQL made, without a Python object per row
    def list_rows(limit: Limit = 100, after: After = None) -> Response[Page]:
        page = hrcore.list_rows_json(spec.name, limit=limit, after=after, pool=reads)
        more = f"/{path}?limit={limit}&after={page.last}" if page.rows == limit else None
        return _json(RawPage(items=msgspec.Raw(page.items), next=more))

    def get_row(row_id: Id) -> Response[dict[str, Any]]:
        return _json(msgspec.Raw(hrcore.get_row_json(spec.name, row_id, pool=reads)))

    max_key = MAX_LOCATION - len(settings.location("").encode())
    batch_help = (
        'Optional JSON body: {"key": "exports/x.csv", "batch_size": 1000}. Answers 202 at '
        "once with the queued load (status queued); `hrcore worker` runs it; GET the "
        "Location (/loads/{id}) for its status and counts. A file already queued or "
        "running answers that load."
    )
    rows_help = (
        f'Fields: {", ".join(spec.column_names)}. JSON {{"rows": [...]}} or text/csv. '
        "Valid rows land in one transaction; invalid ones are answered with reasons and logged."
    )
    return [
        post(f"/{path}/batch", name=f"{name}_batch", status_code=202,
             summary=f"Queue a load of {spec.file_name} from the configured source",
             description=batch_help, operation_class=batch_operation(spec, max_key),
             responses=errors(400, 401, 404, 409, 413, 422, 503))(load_file),
        post(f"/{path}", name=f"{name}_rows", status_code=200,
             summary=f"Add 1 to 1000 {path} rows", description=rows_help,
             operation_class=rows_operation(spec),
             responses=errors(400, 401, 409, 413, 415, 503))(add_rows),
        get(f"/{path}", name=f"{name}_list", sync_to_thread=True,
            summary=f"Page through {path} by id",
            responses=errors(400, 401, 503))(list_rows),
        get(f"/{path}/{{row_id:int}}", name=f"{name}_get", sync_to_thread=True,
            summary=f"One {path} row by id",
            responses=errors(400, 401, 404, 503))(get_row),
    ]  # fmt: skip
