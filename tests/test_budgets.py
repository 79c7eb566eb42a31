"""Per-person budgets through the real server, and a LiteLLM proxy's budget error shown as such."""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_agent.engine.budgets import Budgets
from jupyter_agent.store import Store
from jupyter_agent.testing.scripted_llm import Fail, Reply


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_prompts_per_minute_are_counted_per_person_and_the_window_slides() -> None:
    clock = Clock()
    budgets = Budgets(Store(":memory:"), requests_per_minute=2, clock=clock)
    alice, bob = {"username": "alice"}, {"username": "bob"}
    budgets.admit(alice)
    budgets.admit(alice)
    budgets.admit(bob)
    with pytest.raises(Exception, match=r"alice has sent 2 prompts in the last minute.*try again in 60 s"):
        budgets.admit(alice)
    clock.now += 61
    budgets.admit(alice)


def test_daily_tokens_and_cost_count_against_the_person_who_asked_and_renew_the_next_day() -> None:
    clock = Clock()
    store = Store(":memory:")
    budgets = Budgets(store, tokens_per_day=100, cost_per_day=0.5, clock=clock)
    budgets.observe({"type": "message", "role": "user", "turn": "t1", "user": {"username": "alice"}})
    budgets.observe(
        {"type": "usage", "turn": "t1", "ts": clock.now, "prompt_tokens": 80, "completion_tokens": 30}
    )
    budgets.admit({"username": "bob"})  # bob's day is untouched
    with pytest.raises(Exception, match=r"alice has used 110 of the 100 model tokens allowed per day"):
        budgets.admit({"username": "alice"})
    clock.now += 86_400
    budgets.admit({"username": "alice"})
    budgets.observe({"type": "message", "role": "user", "turn": "t2", "user": {"username": "alice"}})
    budgets.observe({"type": "usage", "turn": "t2", "ts": clock.now, "prompt_tokens": 1, "cost": 0.75})
    with pytest.raises(Exception, match=r"alice has spent \$0.75 of the \$0.50 allowed per day"):
        budgets.admit({"username": "alice"})
    assert Budgets(store, clock=clock).usage("alice")["cost"] == 0.75  # kept in the store


class TestServer:
    @pytest.fixture
    def agent_config(self, agent_config: dict[str, Any]) -> dict[str, Any]:
        agent_config["user_tokens_per_day"] = 50
        return agent_config

    async def test_a_person_over_the_daily_tokens_gets_a_clear_error_and_no_turn_starts(self, agent, llm):
        llm.script(Reply(text="a long answer", usage=(40, 20)))
        ws = await agent.connect(await agent.new_session())
        frames = await ws.turn("first question")
        assert frames[-1]["type"] == "done"

        await ws.send(type="prompt", text="second question")
        refused = (await ws.until(lambda f: f["type"] == "error"))[-1]
        assert refused["code"] == "budget_exceeded" and "seq" not in refused
        assert "model tokens allowed per day" in refused["message"]
        assert len(llm.requests) == 1  # the refused prompt reached no model


async def test_a_litellm_proxy_budget_error_is_shown_as_a_budget_error_not_retried(agent, llm):
    llm.script(Fail(status=400, message="Budget has been exceeded! Current cost: 1.2, Max budget: 1.0"))
    ws = await agent.connect(await agent.new_session())
    frames = await ws.turn("anything")
    error = frames[-1]
    assert error["type"] == "error" and error["code"] == "budget_exceeded"
    assert (
        "budget for this key or user is used up" in error["message"] and "Max budget: 1.0" in error["message"]
    )
    assert len(llm.requests) == 1
