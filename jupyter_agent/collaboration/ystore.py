"""The store of the collaboration rooms' Y updates, with no update lost when a room stops.

jupyter-collaboration writes each update of a room to its YStore as a task of the room's task group, one at
a time (the store holds a lock). When a room stops (everyone left and the cleanup delay passed, or the server
shuts down) that task group is cancelled, and the writes still waiting for the lock are dropped. The store then
lags behind the file saved from the same document; the next load finds them out of sync, rebuilds the
document from the file with new CRDT items, and a client that reconnects with its copy of the old items
(a laptop that slept, a browser tab kept open across a restart) merges both: every cell twice.

:class:`DurableSQLiteYStore` finishes each write it has begun whatever happens to the room (the write is
shielded from the cancellation), so the store and the file agree when the room comes back. The agent's server
configuration selects it (``YDocExtension.ystore_class``).
"""

from __future__ import annotations

import anyio
from jupyter_server_ydoc.stores import SQLiteYStore


class DurableSQLiteYStore(SQLiteYStore):
    """jupyter-collaboration's SQLite YStore, whose update writes complete even when their room stops."""

    async def write(self, data: bytes) -> None:
        with anyio.CancelScope(shield=True):
            await super().write(data)
