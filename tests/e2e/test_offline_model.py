"""The embedded offline model's state in the chat panel and the status bar, in real JupyterLab.

With no hosted model configured the server runs a local model. One lab asks for a model whose weights are not
installed here (the panel shows how to install it); another runs a stand-in ``llama_cpp.server`` that answers
only once the test opens a gate, so the panel is seen while the model starts and after it is ready.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from jupyter_agent.local_model.registry import MODELS, get_spec
from jupyter_agent.local_model.weights import install_hint, missing_parts
from jupyter_agent.testing.jupyter import JupyterServer
from tests.e2e.conftest import (
    ARTIFACTS,
    NOTEBOOK,
    LabPages,
    lab_config,
    notebook_json,
    stand_in_model_server,
)

pytestmark = pytest.mark.e2e

#: A model whose weights this environment lacks (the default 1.5B one, unless someone installed it).
NOT_INSTALLED = next((name for name, spec in MODELS.items() if missing_parts(spec)), None)
#: The model the stand-in server pretends to run: its weights must be installed (98 MB, joined at start).
STAND_IN_MODEL = "smollm2-135m"
STAND_IN_ANSWER = "Hello from the offline stand-in"

#: ``python -m llama_cpp.server`` as the local model server starts it: waits for the gate file, then serves
#: the scripted model on the port it was given (its one answer is a grammar-shaped final answer).
STAND_IN_SERVER = f"""
import json, os, sys, threading, time
from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM
args = sys.argv[1:]
while not os.path.exists(os.environ["AGENT_E2E_MODEL_GATE"]):
    time.sleep(0.1)
llm = ScriptedLLM(port=int(args[args.index("--port") + 1]))
llm.default = Reply(text=json.dumps({{"name": "final_answer", "arguments": {{"text": {STAND_IN_ANSWER!r}}}}}))
llm.start()
threading.Event().wait()
"""


def offline_lab(base: Path, local_model: str) -> JupyterServer:
    """JupyterLab with no hosted model, so the agent runs ``local_model``; ``t.ipynb`` in its root."""
    return JupyterServer(app="jupyterlab", config=lab_config(base, model="", local_model=local_model))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """The lab ``lab_pages`` opens: its local model is not installed."""
    if NOT_INSTALLED is None:
        pytest.skip("every local model is installed in this environment: none to report as not installed")
    with offline_lab(tmp_path_factory.mktemp("lab"), NOT_INSTALLED) as srv:
        (srv.root / NOTEBOOK).write_text(json.dumps(notebook_json("x = 1")))
        yield srv


@pytest.fixture
def starting_lab(tmp_path: Path) -> Iterator[tuple[JupyterServer, Path]]:
    """A lab whose local model runs on the stand-in server; the model is ready once the gate file exists."""
    assert not missing_parts(get_spec(STAND_IN_MODEL)), (
        f"the weights of {STAND_IN_MODEL} are needed: {install_hint(get_spec(STAND_IN_MODEL))}"
    )
    gate = tmp_path / "model-ready"
    # The server (and the model server it starts) inherit this environment when they start.
    with pytest.MonkeyPatch.context() as env:
        stand_in_model_server(tmp_path / "runtime", STAND_IN_SERVER, env)
        env.setenv("AGENT_E2E_MODEL_GATE", str(gate))
        srv = offline_lab(tmp_path / "lab", STAND_IN_MODEL)
        srv.__enter__()
    try:
        (srv.root / NOTEBOOK).write_text(json.dumps(notebook_json("x = 1")))
        yield srv, gate
    finally:
        srv.__exit__(None, None, None)


def test_panel_shows_how_to_install_a_missing_offline_model(lab: JupyterServer, lab_pages: LabPages) -> None:
    health = lab.api("GET", "api/agent/health")
    assert health["model"] == "" and health["local_model"]["state"] == "not_installed", health
    command = install_hint(get_spec(NOT_INSTALLED))
    chat = lab_pages.open()
    chat.open_chat()

    notice = chat.by_id("agent-local-model")
    expect(notice).to_have_attribute("data-state", "not_installed")
    expect(notice).to_have_attribute("role", "status")
    expect(notice).to_contain_text(f"The offline model ({NOT_INSTALLED}) is not installed")
    expect(notice).to_contain_text("are not installed")  # the server's reason
    expect(notice.get_by_test_id("agent-local-model-command")).to_have_text(command)
    expect(notice).to_contain_text("c.JupyterAgent.model")
    expect(chat.status).to_contain_text("offline model not installed")
    expect(chat.status).to_have_attribute("data-local-model", "not_installed")
    expect(chat.panel).not_to_contain_text("No model is configured")  # the notice says what is missing
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chat.page.screenshot(path=str(ARTIFACTS / "offline_model_notice.png"))

    # Sending is still allowed: the turn ends with the server's explanation, and the notice stays.
    chat.send("hello")
    expect(chat.by_id("agent-error").last).to_contain_text(command)
    chat.wait_idle()
    expect(notice).to_have_attribute("data-state", "not_installed")


def test_panel_shows_the_offline_model_starting_until_it_is_ready(
    browser: Browser, starting_lab: tuple[JupyterServer, Path], request: pytest.FixtureRequest
) -> None:
    lab, gate = starting_lab
    pages = LabPages(browser, lab, re.sub(r"[^\w.-]+", "_", request.node.name))
    try:
        chat = pages.open()
        chat.open_chat()
        notice = chat.by_id("agent-local-model")
        expect(notice).to_have_attribute("data-state", "starting")
        expect(notice).to_have_text(
            f"Starting the offline model ({STAND_IN_MODEL})… your first message will wait for it"
        )
        expect(notice.locator(".jp-AgentChat-spinner")).to_be_visible()
        expect(chat.status).to_contain_text("offline model starting")
        picker = chat.by_id("agent-model-picker")
        expect(picker.locator("option:checked")).to_have_text(f"offline: {STAND_IN_MODEL}")
        pages.snapshot(chat, "starting")

        chat.send("Say hello")  # sent while the model starts: the turn waits for it
        expect(chat.by_id("agent-stop")).to_be_visible()
        gate.touch()
        expect(notice).to_have_count(0)
        expect(chat.status).not_to_contain_text("offline model")
        expect(chat.status).to_have_attribute("data-local-model", "ready")
        expect(chat.assistant_text()).to_have_text(STAND_IN_ANSWER)
        chat.wait_idle()
        expect(chat.by_id("agent-usage").last).to_contain_text(f"offline: {STAND_IN_MODEL}")
        assert lab.api("GET", "api/agent/health")["local_model"]["ready"] is True
    finally:
        pages.screenshot_all()
        pages.close()
