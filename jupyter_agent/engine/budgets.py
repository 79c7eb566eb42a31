"""Per-person budgets: prompts per minute, and model tokens and cost per day (UTC).

:meth:`Budgets.admit` runs when a person sends a prompt and refuses it with a clear message once a limit is
reached; :meth:`Budgets.observe` sees every event a session logs and counts each model call's ``usage``
against the person whose prompt started the turn. Daily totals persist in the store (``kv``), so a restart
does not reset them; the per-minute window lives in memory. A limit of 0 means no limit.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from datetime import UTC, datetime
from typing import Any

from jupyter_agent.errors import BudgetExceeded

ANONYMOUS = "(anonymous)"


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


class Budgets:
    def __init__(
        self,
        store: Any,
        requests_per_minute: int = 0,
        tokens_per_day: int = 0,
        cost_per_day: float = 0.0,
        clock: Any = time.time,
    ) -> None:
        self.store = store  # anything with get_value/set_value
        self.requests_per_minute = requests_per_minute
        self.tokens_per_day = tokens_per_day
        self.cost_per_day = cost_per_day
        self._clock = clock
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._turn_users: dict[str, str] = {}  # turn id -> the person whose prompt started it

    @property
    def active(self) -> bool:
        return bool(self.requests_per_minute or self.tokens_per_day or self.cost_per_day)

    def usage(self, user: str | None, day: str | None = None) -> dict[str, float]:
        """A person's model use on ``day`` (UTC, default today): ``tokens`` and ``cost`` (USD)."""
        key = f"usage:{user or ANONYMOUS}:{day or _day(self._clock())}"
        return dict(self.store.get_value(key, {"tokens": 0, "cost": 0.0}))

    def admit(self, user: dict[str, Any] | None) -> None:
        """Let a prompt through, or raise :class:`BudgetExceeded` saying which limit and until when."""
        if not self.active:
            return
        name = (user or {}).get("username") or ANONYMOUS
        now = self._clock()
        if self.tokens_per_day or self.cost_per_day:
            used = self.usage(name)
            if self.tokens_per_day and used["tokens"] >= self.tokens_per_day:
                raise BudgetExceeded(
                    f"{name} has used {used['tokens']:,.0f} of the {self.tokens_per_day:,} model tokens allowed "
                    "per day (c.JupyterAgent.user_tokens_per_day); the budget renews at midnight UTC"
                )
            if self.cost_per_day and used["cost"] >= self.cost_per_day:
                raise BudgetExceeded(
                    f"{name} has spent ${used['cost']:.2f} of the ${self.cost_per_day:.2f} allowed per day "
                    "(c.JupyterAgent.user_cost_per_day); the budget renews at midnight UTC"
                )
        if self.requests_per_minute:
            recent = self._recent[name]
            while recent and recent[0] <= now - 60:
                recent.popleft()
            if len(recent) >= self.requests_per_minute:
                wait = 60 - (now - recent[0])
                raise BudgetExceeded(
                    f"{name} has sent {len(recent)} prompts in the last minute, the most allowed "
                    f"(c.JupyterAgent.user_requests_per_minute); try again in {wait:.0f} s",
                    code="too_many_requests",
                )
            recent.append(now)

    def observe(self, event: dict[str, Any]) -> None:
        """Count a ``usage`` event against the person whose prompt started its turn (when a limit is set)."""
        if not (self.tokens_per_day or self.cost_per_day):
            return  # nothing to count against: no store write per model call
        kind, turn = event.get("type"), event.get("turn")
        if kind == "message" and event.get("role") == "user" and isinstance(turn, str):
            self._turn_users[turn] = (event.get("user") or {}).get("username") or ANONYMOUS
        elif kind == "usage" and isinstance(turn, str):
            name = self._turn_users.get(turn, ANONYMOUS)
            used = self.usage(name)
            used["tokens"] += (event.get("prompt_tokens") or 0) + (event.get("completion_tokens") or 0)
            used["cost"] += event.get("cost") or 0.0
            self.store.set_value(f"usage:{name}:{_day(event.get('ts') or self._clock())}", used)
        elif kind in ("done", "error") and isinstance(turn, str) and event.get("task") is None:
            self._turn_users.pop(turn, None)
