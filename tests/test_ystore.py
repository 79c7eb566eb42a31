"""The rooms' update store keeps every update whose write began, even when its room stops at that moment.

A room writes each update as a task of its task group, one at a time; stopping the room cancels the group.
jupyter-collaboration's own store drops the writes still waiting then; ours finishes them (see
jupyter_agent.collaboration.ystore), so a room reloaded from the store agrees with the file saved from it.
"""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from jupyter_server_ydoc.stores import SQLiteYStore
from pycrdt import Doc, Text
from pycrdt.store import YDocNotFound

from jupyter_agent.collaboration.ystore import DurableSQLiteYStore

UPDATES = 40


async def stored_after_a_room_stop(store_class: type, db_path: str) -> str:
    """Write UPDATES edits as a room does, cancel the room at once, and read back what the store kept."""
    doc = Doc({"source": Text()})
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for i in range(UPDATES):
        doc["source"] += f"line {i}\n"
    async with anyio.create_task_group() as room:
        store = store_class(path="t.ipynb", config=None, db_path=db_path)
        await room.start(store.start)
        await store.db_initialized.wait()
        for update in updates:
            room.start_soon(store.write, update)
        await anyio.lowlevel.checkpoint()  # the first write holds the store's lock; the others wait for it
        room.cancel_scope.cancel()  # the room stops (its clients left, or the server shuts down)
    reader = store_class(path="t.ipynb", config=None, db_path=db_path)
    async with anyio.create_task_group() as tg:
        await tg.start(reader.start)
        loaded = Doc({"source": Text()})
        try:
            await reader.apply_updates(loaded)
        except YDocNotFound:  # not one update was kept
            pass
        tg.cancel_scope.cancel()
    return str(loaded["source"])


@pytest.mark.parametrize("store_class", [DurableSQLiteYStore], ids=["durable"])
async def test_writes_queued_when_the_room_stops_are_all_kept(tmp_path, store_class) -> None:
    text = await stored_after_a_room_stop(store_class, str(tmp_path / "ystore.db"))
    assert text == "".join(f"line {i}\n" for i in range(UPDATES))


async def test_the_upstream_store_loses_them_which_is_why_ours_exists(tmp_path) -> None:
    text = await stored_after_a_room_stop(SQLiteYStore, str(tmp_path / "ystore.db"))
    assert text != "".join(f"line {i}\n" for i in range(UPDATES))
