"""Work around the shutdown hang of jupyter-collaboration (jupyter-collaboration #161/#503).

anyio's worker threads (used by the collaboration file loaders and stores) are not daemons and stop only
when their root task ends, which never happens under tornado; the interpreter then waits for them forever
at exit. Before the interpreter joins its threads, we ask every idle anyio worker to stop.
"""

from __future__ import annotations

import threading

_registered = False


def _stop_anyio_workers() -> None:
    try:
        from anyio._backends._asyncio import WorkerThread
    except ImportError:  # anyio changed: nothing to do
        return
    for thread in threading.enumerate():
        if isinstance(thread, WorkerThread) and thread.is_alive():
            thread.stopping = True
            try:
                thread.queue.put_nowait(None)
            except Exception:  # a busy worker (full queue) finishes its job and is then joined normally
                pass


def install_shutdown_workaround() -> None:
    """Register the fix once: runs before ``threading`` joins non-daemon threads at interpreter exit."""
    global _registered
    if _registered:
        return
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        register(_stop_anyio_workers)
        _registered = True
