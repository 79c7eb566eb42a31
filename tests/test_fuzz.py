"""Property-based fuzzing of every REST body and WebSocket frame against a real server (a few hundred cases;
``benchmarks/fuzz.py`` runs thousands): no crash, no 5xx without a readable error, no bad frame without an
error frame, no socket closed, no turn left running, and nothing outside the root changed.

Hypothesis drives a sync test (``@given`` cannot wrap pytest-jupyter's async tests); each example runs on the
server's loop through ``jp_asyncio_loop``. Examples are derandomized, so a failure repeats; Hypothesis shrinks
it and prints the smallest failing case.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from jupyter_agent.testing.scripted_llm import ScriptedLLM
from tests.fuzz_kit import FuzzRunner, Outcome, Snapshot, Target, fuzz_model, prepare_sandbox
from tests.fuzz_strategies import ConnectCase, HttpCase, WsCase, connect_cases, http_cases, ws_cases

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture
def fuzz(agent, agent_app, llm: ScriptedLLM, jp_root_dir: Path, tmp_path: Path, jp_asyncio_loop) -> Callable:
    """Runs one case against the test server and checks the properties (raises Violation when one fails)."""
    llm.default = fuzz_model
    root = Path(agent_app.root)
    prepare_sandbox(root)
    target = Target(
        url=f"http://127.0.0.1:{agent.port}{agent.base_url}",
        headers=agent.auth_header,
        root=root,
        backup_dir=Path(agent_app.backup_dir),
        snapshot=Snapshot(root.parent, root.parent / "outside", state=("state",)),
        max_message_bytes=agent_app.max_message_bytes,
    )
    runner = FuzzRunner(target)

    def run(case: HttpCase | WsCase | ConnectCase) -> Outcome:
        return jp_asyncio_loop.run_until_complete(runner.run(case))

    return run


@settings(FUZZ, max_examples=300)
@given(case=http_cases())
def test_no_request_makes_the_server_fail_or_touch_files_outside_the_root(fuzz, case: HttpCase) -> None:
    fuzz(case)


@settings(FUZZ, max_examples=150)
@given(case=ws_cases())
def test_every_bad_frame_gets_an_error_frame_and_the_socket_and_turns_carry_on(fuzz, case: WsCase) -> None:
    fuzz(case)


@settings(FUZZ, max_examples=50)
@given(case=connect_cases())
def test_odd_websocket_handshakes_are_refused_cleanly(fuzz, case: ConnectCase) -> None:
    fuzz(case)
