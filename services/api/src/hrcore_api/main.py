"""``hrcore-api``: serve the API with uvicorn."""

from __future__ import annotations

import argparse
import logging
import os

import hrcore
import uvicorn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="hrcore-api", description="Serve hrcore's HTTP API.")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "1")))
    parser.add_argument(
        "--reload", action="store_true", help="restart on code changes (development)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.workers > 1 and not os.environ.get("DATABASE_URL"):
        # the embedded server: started once here, not by every worker at the same time
        os.environ["DATABASE_URL"] = hrcore.database_url()
    uvicorn.run(
        "hrcore_api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        reload=args.reload,
        access_log=False,  # hrcore_api.logs writes one JSON line per request
    )


if __name__ == "__main__":
    main()
