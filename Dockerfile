# syntax=docker/dockerfile:1.7
# hrcore-api: build with uv in one stage, run from a slim image as a non-root user.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
# every workspace member's pyproject.toml first: the dependency layer is cached
# until a dependency changes, not whenever the code does
COPY pyproject.toml uv.lock ./
COPY packages/hrcore/pyproject.toml packages/hrcore/pyproject.toml
COPY services/api/pyproject.toml services/api/pyproject.toml
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --package hrcore-api --no-install-workspace
COPY packages packages
COPY services services
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --package hrcore-api --no-editable

FROM python:${PYTHON_VERSION}-slim AS runtime
RUN useradd --system --uid 10001 --create-home --home-dir /home/hrcore hrcore
COPY --from=build --chown=hrcore:hrcore /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    HRCORE_HOME=/home/hrcore
USER hrcore
WORKDIR /home/hrcore
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health-db', timeout=4)"]
ENTRYPOINT ["hrcore-api"]

# development: the workspace installed editable, with dev tools, reloading on changes
FROM build AS dev
RUN --mount=type=cache,target=/root/.cache/uv uv sync --locked --package hrcore-api
ENV PATH=/app/.venv/bin:$PATH HOST=0.0.0.0 PORT=8000
EXPOSE 8000
CMD ["hrcore-api", "--reload"]
