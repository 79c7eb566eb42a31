"""Driving the engine without a server: engines on the scripted model, and a subscriber that waits for events.
The ``engines`` fixture (conftest.py) hands out an :class:`EngineKit` and closes every engine it built."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_agent.engine.llm import LLMClient
from jupyter_agent.engine.loop import AgentLoop, Budget
from jupyter_agent.engine.router import ToolRouter
from jupyter_agent.engine.session import Session, SessionManager, Turn
from jupyter_agent.engine.types import TERMINAL_EVENTS, ToolCall
from jupyter_agent.store import Store
from jupyter_agent.testing.scripted_llm import ScriptedLLM
from jupyter_agent.tools.base import Tool, ToolContext

WAIT = 10.0  # seconds any single expected event may take before the test fails


class EngineKit:
    """Builds engines whose agent loop talks to the scripted model and runs tools in ``root_dir``."""

    def __init__(self, llm: ScriptedLLM, root_dir: Path) -> None:
        self.llm = llm
        self.root_dir = root_dir
        self._built: list[SessionManager] = []

    def engine(
        self,
        *tools: Tool,
        policy: dict[str, str] | None = None,
        budget: Budget | None = None,
        store: Store | None = None,
        approval_timeout: float = WAIT,
        watch_type: type[Watch] | None = None,
        **client_options: Any,
    ) -> Engine:
        """An engine on a fresh in-memory store unless given one; ``client_options`` go to the
        :class:`LLMClient` (short retry backoff and timeouts unless given)."""
        settings: dict[str, Any] = {
            "backoff": 0.01,
            "request_timeout": 5,
            "chunk_timeout": 2,
            **client_options,
        }
        client = LLMClient(
            model="openai/scripted", options={"api_base": self.llm.base_url, "api_key": "sk-test"}, **settings
        )
        router = ToolRouter(tools, policy)
        loop = AgentLoop(client, router, self._tool_context, budget)
        manager = SessionManager(store or Store(":memory:"), loop, approval_timeout)
        self._built.append(manager)
        return Engine(manager, router, watch_type or Watch)

    def _tool_context(self, turn: Turn, call: ToolCall) -> ToolContext:
        return ToolContext(session_id=turn.session.id, root_dir=self.root_dir, call_id=call.id)

    async def close(self) -> None:
        for manager in self._built:
            await manager.close()


@dataclass
class Engine:
    """A session manager and its tool router, with a way to open a session and watch it."""

    sessions: SessionManager
    router: ToolRouter
    watch_type: type[Watch]

    @property
    def store(self) -> Store:
        return self.sessions.store

    def open(self) -> tuple[Session, Watch]:
        session = self.sessions.create()
        return session, self.watch_type(session)

    async def ask(self, session: Session, watch: Watch, text: str) -> list[dict[str, Any]]:
        """Send a prompt and return the events of its turn, up to its terminal event."""
        turn = session.submit(text)
        await watch.end_of(turn)
        return watch.of(turn)


class Watch:
    """Everything one subscriber of a session receives, with a way to wait for a particular event."""

    def __init__(self, session: Session) -> None:
        self.events: list[dict[str, Any]] = []
        self._waiters: list[tuple[Callable[[dict[str, Any]], bool], asyncio.Event]] = []
        session.subscribe(self._receive, after=None)

    def _receive(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        for predicate, arrived in self._waiters:
            if predicate(event):
                arrived.set()

    async def until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT
    ) -> dict[str, Any]:
        """The first event (already received or still to come) that matches."""
        arrived = asyncio.Event()
        waiter = (predicate, arrived)
        self._waiters.append(waiter)
        try:
            if not any(predicate(e) for e in self.events):
                await asyncio.wait_for(arrived.wait(), timeout)
        finally:
            self._waiters.remove(waiter)
        return next(e for e in self.events if predicate(e))

    async def end_of(self, turn: Turn) -> dict[str, Any]:
        return await self.until(lambda e: e["type"] in TERMINAL_EVENTS and e.get("turn") == turn.id)

    def of(self, turn: Turn, *types: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("turn") == turn.id and (not types or e["type"] in types)]
