"""Stop the running file loads when the server is asked to stop (SIGTERM, SIGINT).

uvicorn handles those signals itself: it stops accepting connections, then waits
for the requests in flight, and only then runs the app's shutdown hooks. A load of
millions of rows would keep it waiting for minutes (and ECS kills a task 30 s after
its SIGTERM). So the app wraps the handler the server installed: the wrapper sets
the app's ``stopping`` event, which every load was given as ``cancel=``, then calls
the server's handler. Each load stops at its next batch boundary, its ledger entry
says ``cancelled``, its request is answered, and the server's graceful shutdown
goes on. (uvicorn 0.54 and Litestar 2.25 offer no hook that runs on the signal
itself; uvicorn installs its handlers with ``signal.signal`` before the app starts,
and puts back its own saved ones when it exits.)
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
Handler = Callable[[int, FrameType | None], Any]


def stop_loads_on_signals(stopping: threading.Event) -> Callable[[], None]:
    """Make SIGINT and SIGTERM also set ``stopping``; returns what undoes it.

    Only in the main thread (the only one where Python lets handlers be set; an app
    served in another thread, as by a test client, is left alone), and only for a
    signal whose handler is a Python callable: the server's. A default or ignored
    disposition is kept as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    installed: dict[int, tuple[Handler, Handler]] = {}
    for sig in SIGNALS:
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum: int, frame: FrameType | None, server: Handler = previous) -> None:
            stopping.set()  # first: the loads see it at their next batch boundary
            server(signum, frame)

        signal.signal(sig, handler)
        installed[sig] = (handler, previous)

    def undo() -> None:
        for sig, (handler, previous) in installed.items():
            if signal.getsignal(sig) is handler:  # still ours: nobody replaced it since
                signal.signal(sig, previous)

    return undo
