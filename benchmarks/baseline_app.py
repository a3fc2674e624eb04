"""The baseline: an API written the way the old service did it (FastAPI + SQLModel,
one ORM upsert per row), run side by side with hrcore-api on the same database.

    uvicorn --factory benchmarks.baseline_app:create_app   (DATABASE_URL must be set)
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from fastapi import Body, FastAPI, HTTPException
from sqlmodel import Field, Session, SQLModel, create_engine, select


class BaselineEmployee(SQLModel, table=True):
    __tablename__ = "baseline_hired_employees"

    id: int = Field(primary_key=True)
    name: str
    datetime: datetime
    department_id: int
    job_id: int


def create_app() -> FastAPI:
    url = os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url, pool_size=8)
    SQLModel.metadata.create_all(engine)
    app = FastAPI()

    @app.get("/")
    def index() -> dict[str, str]:
        return {"name": "baseline"}

    @app.post("/employees")
    def add(rows: list[dict[str, Any]] = Body(..., embed=True)) -> dict[str, int]:  # noqa: B008
        if not 1 <= len(rows) <= 1000:
            raise HTTPException(400, "1 to 1000 rows")
        written = 0
        with Session(engine) as session:
            for row in rows:  # one upsert per row, as the old service did
                try:
                    employee = BaselineEmployee.model_validate(row)
                except ValueError:
                    continue
                stored = session.get(BaselineEmployee, employee.id)
                if stored is None:
                    session.add(employee)
                else:
                    for key, value in employee.model_dump().items():
                        setattr(stored, key, value)
                session.commit()
                written += 1
        return {"written": written}

    @app.get("/employees")
    def page(limit: int = 100, after: int = 0) -> dict[str, Any]:
        with Session(engine) as session:
            found = session.exec(
                select(BaselineEmployee)
                .where(BaselineEmployee.id > after)
                .order_by(BaselineEmployee.id)  # type: ignore[arg-type]
                .limit(limit)
            ).all()
            return {"items": [e.model_dump(mode="json") for e in found]}

    return app
