"""``%%agent`` in a real ipykernel driven by jupyter_client, against the scripted model over HTTP.

One kernel serves the whole module (the engine is imported once); the model's conversation in that kernel
goes on from test to test, so tests look at the last request only.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel

from jupyter_agent.testing.jupyter import agent_environment
from jupyter_agent.testing.scripted_llm import Fail, Reply, ScriptedLLM, Stall, ToolCallSpec

# A 1x1 PNG, for an image output without matplotlib.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def kernel_env(base, llm: ScriptedLLM, **extra: str) -> dict[str, str]:
    """The environment of a kernel that reaches the scripted model, with isolated Jupyter directories."""
    return agent_environment(base, llm.base_url, **extra)


@dataclass
class Execution:
    reply: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.reply["content"]["status"]

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["header"]["msg_type"] in types]

    def stream(self, name: str = "stdout") -> str:
        return "".join(m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == name)

    def shown(self, mime: str) -> list[str]:
        """Every value of ``mime`` displayed or updated, in order."""
        out = []
        for m in self.of_type("display_data", "update_display_data", "execute_result"):
            if mime in m["content"]["data"]:
                out.append(str(m["content"]["data"][mime]))
        return out


class Kernel:
    """A started kernel and a blocking client, with helpers that wait for messages (never for time)."""

    def __init__(self, km: Any, kc: Any) -> None:
        self.km = km
        self.kc = kc

    def start(self, code: str, allow_stdin: bool = False) -> str:
        """Send a cell; ``allow_stdin=True`` is a person's frontend (JupyterLab), else an unattended run."""
        return self.kc.execute(code, allow_stdin=allow_stdin)

    def collect(self, msg_id: str, until: Any = None, timeout: float = 90) -> list[dict[str, Any]]:
        """iopub messages of one request until ``until(msg)`` is true, or until the kernel is idle again."""
        messages = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            messages.append(msg)
            if until is not None and until(msg):
                return messages
            if msg["header"]["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return messages

    def reply(self, msg_id: str, timeout: float = 30) -> dict[str, Any]:
        while True:
            msg = self.kc.get_shell_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    def run(self, code: str, timeout: float = 90) -> Execution:
        msg_id = self.start(code)
        messages = self.collect(msg_id, timeout=timeout)
        return Execution(self.reply(msg_id), messages)

    def value(self, expression: str) -> Any:
        """A JSON value computed in the kernel."""
        done = self.run(f"import json as _j; print(_j.dumps({expression}))")
        assert done.status == "ok", done.reply["content"]
        return json.loads(done.stream().strip().splitlines()[-1])


def start_kernel(env: dict[str, str], cwd: str, kernel_name: str = "python3", **kwargs: Any) -> Kernel:
    km, kc = start_new_kernel(kernel_name=kernel_name, env=env, cwd=cwd, startup_timeout=60, **kwargs)
    return Kernel(km, kc)


def stop_kernel(kernel: Kernel) -> None:
    kernel.kc.stop_channels()
    kernel.km.shutdown_kernel(now=True)


def tool_messages(request: dict[str, Any]) -> list[str]:
    return [str(m.get("content")) for m in request["messages"] if m["role"] == "tool"]


@pytest.fixture(scope="module")
def kernel(tmp_path_factory, scripted_llm_server):
    base = tmp_path_factory.mktemp("magics")
    k = start_kernel(kernel_env(base, scripted_llm_server), str(base))
    k.loaded = k.run(  # type: ignore[attr-defined]
        "import sys, time as _t\n_t0 = _t.perf_counter()\n%load_ext jupyter_agent\n"
        "print(round((_t.perf_counter() - _t0) * 1000, 1), 'litellm' in sys.modules,"
        " 'jupyter_agent.engine.loop' in sys.modules, 'jsonschema' in sys.modules)"
    )
    yield k
    stop_kernel(k)


def test_load_ext_returns_at_once_and_warms_up_in_the_background(kernel):
    assert kernel.loaded.status == "ok", kernel.loaded.reply["content"]
    # With no request yet, litellm and the engine load in daemon threads (benchmarks/fresh_process.py
    # measures what this saves the first request).
    warmed = kernel.run(
        "import threading\n"
        "for _t in threading.enumerate():\n"
        "    if _t.name.startswith(('jupyter-agent-warm-up', 'litellm-import')): _t.join(60)\n"
        "print('litellm' in sys.modules, 'jupyter_agent.engine.loop' in sys.modules, 'jsonschema' in sys.modules)"
    )
    assert warmed.stream().split() == ["True", "True", "True"], warmed.stream()


def test_agent_cell_streams_the_answer_progressively(kernel, llm):
    llm.chunk_delay = 0.15  # longer than the view's update interval: each word shows on its own
    text = "The quick brown fox jumps over the lazy dog"
    llm.script(Reply(text=text))
    done = kernel.run("%%agent\nsay something")
    assert done.status == "ok", done.reply["content"]
    shown = done.shown("text/markdown")
    assert shown[-1] == text
    assert len(shown) >= 4, shown  # the first word, then updates as words arrive
    assert all(text.startswith(s) for s in shown)
    assert [len(s) for s in shown] == sorted(len(s) for s in shown)
    assert done.of_type("update_display_data")
    assert llm.requests[-1]["messages"][-1]["content"] == "say something"
    # Where the Stop button was, a line says what the turn took.
    footer = done.shown("text/plain")[-1]
    assert footer.startswith("openai/scripted · 1 model call · ") and " tokens · " in footer, footer


def test_variables_tool_gives_the_model_summaries_not_contents(kernel, llm):
    setup = kernel.run(
        "class DataFrame:\n"
        "    shape = (3, 2)\n"
        "    columns = ['price', 'city']\n"
        "    dtypes = {'price': 'float64', 'city': 'object'}\n"
        "    def head(self, n=5):\n"
        "        return '   price city\\n0  1.5   Oslo'\n"
        "df = DataFrame()\n"
        "numbers = list(range(100_000))\n"
        "settings = {'alpha': 1, 'beta': 2}"
    )
    assert setup.status == "ok"
    llm.script(Reply(tool_calls=[ToolCallSpec("python_variables", {})]), Reply(text="You have a table."))
    done = kernel.run("%%agent --no-run\nwhat data do I have?")
    assert done.status == "ok", done.reply["content"]
    tools = [t["function"]["name"] for t in llm.requests[-2]["tools"]]
    assert "python_variables" in tools and "python_run" not in tools  # --no-run
    result = tool_messages(llm.requests[-1])[-1]
    assert "df: DataFrame, 3 rows × 2 columns; columns: price (float64), city (object)" in result
    assert "Oslo" not in result  # rows are read of pandas and polars tables only: others may compute them
    assert "numbers: list, 100000 items" in result
    assert "99999" not in result  # not the whole content
    assert "settings: dict, 2 keys: 'alpha', 'beta'" in result


def test_python_run_changes_the_user_namespace_and_shows_the_code(kernel, llm):
    llm.script(
        Reply(tool_calls=[ToolCallSpec("python_run", {"code": "z = 41 + 1\nprint('z is set')\nz"})]),
        Reply(text="z is 42."),
    )
    done = kernel.run("%%agent\nset z to 42")
    assert done.status == "ok", done.reply["content"]
    result = tool_messages(llm.requests[-1])[-1]
    assert "[stdout]\nz is set" in result and "[result]\n42" in result
    blocks = done.shown("text/html")
    assert any("z = 41 + 1" in b and "<details>" in b and "z is set" in b for b in blocks)
    assert kernel.run("print(z)").stream() == "42\n"


def test_python_run_errors_come_back_with_a_trimmed_traceback(kernel, llm):
    llm.script(
        Reply(tool_calls=[ToolCallSpec("python_run", {"code": "def f():\n    return 1 / 0\nf()"})]),
        Reply(text="It divides by zero."),
    )
    done = kernel.run("%%agent\nrun f")
    assert done.status == "ok"
    result = tool_messages(llm.requests[-1])[-1]
    assert "[error] ZeroDivisionError: division by zero" in result
    assert "return 1 / 0" in result and "\x1b[" not in result
    assert not done.of_type("error")  # the agent's error is shown in its block, not as the cell's error
    assert any("✗" in b and "ZeroDivisionError" in b for b in done.shown("text/html"))


def test_images_from_python_run_reach_a_model_that_can_see(kernel, llm):
    assert kernel.run("%agent_config vision=true").status == "ok"
    code = f"from IPython.display import Image, display\ndisplay(Image(data={PNG!r}))"
    llm.script(Reply(tool_calls=[ToolCallSpec("python_run", {"code": code})]), Reply(text="A dot."))
    done = kernel.run("%%agent\nshow me the image")
    assert done.status == "ok", done.reply["content"]
    parts = llm.requests[-1]["messages"][-1]["content"]
    urls = [p["image_url"]["url"] for p in parts if p.get("type") == "image_url"]
    assert urls == ["data:image/png;base64," + base64.b64encode(PNG).decode()]
    assert any("<img" in b for b in done.shown("text/html"))
    assert kernel.run("%agent_config vision=").status == "ok"


def test_interrupt_cancels_the_turn_and_the_kernel_keeps_working(kernel, llm):
    llm.script(Stall(30, after_text="Let me think"))
    msg_id = kernel.start("%%agent\nthink for a long time")
    kernel.collect(msg_id, until=lambda m: "Let me think" in json.dumps(m["content"].get("data", {})))
    kernel.km.interrupt_kernel()
    messages = kernel.collect(msg_id)
    reply = kernel.reply(msg_id)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "TurnCancelled"
    assert any("Cancelled" in json.dumps(m["content"]) for m in messages)
    kernel.run("from jupyter_agent.kernel.frontend import frontend_for\n_front = frontend_for(get_ipython())")
    last = kernel.value(
        "[(e['type'], e.get('reason')) for e in _front._agent.store.events(_front._default_session)][-1]"
    )
    assert last == ["done", "cancelled"]
    llm.script(Reply(text="I am back."))
    done = kernel.run("%%agent\nare you there?")
    assert done.status == "ok" and done.shown("text/markdown")[-1] == "I am back."


def test_interrupt_stops_code_the_agent_runs(kernel, llm):
    llm.script(Reply(tool_calls=[ToolCallSpec("python_run", {"code": "import time\ntime.sleep(60)"})]))
    msg_id = kernel.start("%%agent\nwait a minute")
    kernel.collect(msg_id, until=lambda m: "time.sleep(60)" in json.dumps(m["content"].get("data", {})))
    started = time.monotonic()
    kernel.km.interrupt_kernel()
    kernel.collect(msg_id)
    assert kernel.reply(msg_id)["content"]["ename"] == "TurnCancelled"
    assert time.monotonic() - started < 20
    assert kernel.run("print('still here')").stream() == "still here\n"


def test_agent_inside_other_code_runs_the_blocking_way(kernel, llm):
    llm.script(Reply(text="Blocking works."))
    done = kernel.run("before = 1\n%agent say it\nafter = 2")
    assert done.status == "ok", done.reply["content"]
    assert done.shown("text/markdown")[-1] == "Blocking works."
    assert kernel.value("[before, after]") == [1, 2]


def test_provider_errors_are_shown_plainly(kernel, llm):
    llm.script(Fail(401, "invalid key"))
    done = kernel.run("%agent hello")
    assert done.status == "ok"
    err = done.stream("stderr")
    assert err.startswith("Agent error: ") and "HTTP 401" in err and "API key" in err
    assert "Traceback" not in err and not done.of_type("error")


def test_missing_model_is_explained(kernel, llm):
    try:
        # No model, and no embedded one either, whatever this machine installed.
        setup = "import os\n_saved = os.environ.pop('JUPYTER_AGENT_MODEL')\nos.environ['JUPYTER_AGENT_LOCAL_MODEL'] = 'none'"
        assert kernel.run(setup).status == "ok"
        done = kernel.run("%%agent\nhello")
        assert "No model is configured" in done.stream("stderr")
        assert "JUPYTER_AGENT_MODEL" in done.stream("stderr")
        assert llm.requests == []
        done = kernel.run("%%agent --model openai/scripted\nhello")  # a model named per request works
        assert done.shown("text/markdown")[-1] == "OK"
    finally:
        kernel.run(
            "os.environ['JUPYTER_AGENT_MODEL'] = _saved\nos.environ.pop('JUPYTER_AGENT_LOCAL_MODEL', None)"
        )


def test_bad_options_and_config(kernel, llm):
    assert "unknown option --fast" in kernel.run("%%agent --fast\nhi").stream("stderr")
    refused = kernel.run("%%agent --model\nhi").stream("stderr")
    assert "--model: expected one argument" in refused and "Usage: %agent [--model M]" in refused
    assert "unexpected text on the %%agent line" in kernel.run("%%agent --plan now\nhi").stream("stderr")
    shown = kernel.run("%agent_config model=openai/other session=analysis").stream()
    assert "model: openai/other" in shown and "session: analysis" in shown
    shown = kernel.run("%agent_config reset").stream()
    assert "model: openai/scripted" in shown
    assert llm.requests == []


def test_agent_help_shows_every_option(kernel):
    page = kernel.run("%agent?").reply["content"]["payload"][0]["data"]["text/plain"]
    for option in ("--model M", "--session NAME", "--no-run", "--plan", "--yes, -y", "--cells"):
        assert option in page


def test_a_one_line_request_reaches_the_model_as_written_after_its_options(kernel, llm):
    llm.script(Reply(text="noted"))
    kernel.run('%agent --session one-line --no-run what\'s in   "df"? -- see --plan')
    texts = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "user"]
    assert texts == ['what\'s in   "df"? -- see --plan']


def test_named_sessions_keep_their_conversation(kernel, llm):
    llm.script(Reply(text="first"), Reply(text="second"))
    kernel.run("%%agent --session notes\nremember the number 7")
    kernel.run("%%agent --session notes\nwhich number?")
    texts = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "user"]
    assert texts == ["remember the number 7", "which number?"]


def test_cells_hands_the_request_to_the_server_agent_which_writes_cells_below(llm):
    from jupyter_client.blocking import BlockingKernelClient

    from jupyter_agent.testing.jupyter import JupyterServer

    config = {"YDocExtension": {"document_save_delay": 0.1}}
    with JupyterServer(llm_base_url=llm.base_url, config=config) as server:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [
            nbformat.v4.new_code_cell("x = 1", id="asker"),
            nbformat.v4.new_code_cell("y = 2", id="after"),
        ]
        nbformat.write(nb, server.root / "t.ipynb")
        started = server.api(
            "POST", "api/sessions", {"path": "t.ipynb", "type": "notebook", "kernel": {"name": "python3"}}
        )
        client = BlockingKernelClient()
        client.load_connection_file(server.base / "runtime" / f"kernel-{started['kernel']['id']}.json")
        client.start_channels()
        try:
            _wait_for_ready(client)
            kernel = Kernel(None, client)
            assert kernel.run("%load_ext jupyter_agent").status == "ok"
            llm.script(
                Reply(
                    tool_calls=[
                        ToolCallSpec(
                            "notebook_insert_cell", {"path": "t.ipynb", "source": "print(6 * 7)", "index": 1}
                        )
                    ]
                ),
                Reply(text="Added the cell."),
            )
            request = client.session.msg(
                "execute_request",
                {"code": "%%agent --cells\nprint 6 times 7", "silent": False, "allow_stdin": False},
                metadata={"cellId": "asker"},
            )
            client.shell_channel.send(request)
            messages = kernel.collect(request["header"]["msg_id"])
            shown = json.dumps([m["content"] for m in messages])
            assert "Sent to the agent of the Jupyter server" in shown and "t.ipynb" in shown
            sessions = server.api("GET", "api/agent/sessions")["sessions"]
            assert len(sessions) == 1
            events = _server_events_until_done(server, sessions[0]["id"])
            assert events[-1]["type"] == "done", events[-1]
            prompt = llm.requests[0]["messages"][-1]["content"]
            assert prompt.startswith("[Active notebook: t.ipynb]\nprint 6 times 7")
            assert "right below the cell with id asker" in prompt
            sources = _saved_sources(server, lambda s: "print(6 * 7)" in s)
            assert sources == ["x = 1", "print(6 * 7)", "y = 2"]
        finally:
            client.stop_channels()


def _server_events_until_done(server: Any, session_id: str) -> list[dict[str, Any]]:
    """The session's events, replayed and then live over its WebSocket, up to the end of the turn."""
    import asyncio

    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    async def read() -> list[dict[str, Any]]:
        url = f"ws://127.0.0.1:{server.port}/api/agent/sessions/{session_id}/ws"
        headers = {"Authorization": f"token {server.token}"}
        async with asyncio.timeout(30):
            conn = await websocket_connect(HTTPRequest(url, headers=headers))
        events = []
        try:
            async with asyncio.timeout(60):
                while not events or events[-1]["type"] not in ("done", "error"):
                    event = json.loads(await conn.read_message())
                    if "seq" in event:
                        events.append(event)
        finally:
            conn.close()
        return events

    return asyncio.run(read())


def _saved_sources(server: Any, ready: Any, timeout: float = 30) -> list[str]:
    """The notebook's cell sources once the collaboration room has saved the agent's edit to disk."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            sources = [c.source for c in nbformat.read(server.root / "t.ipynb", as_version=4).cells]
        except (ValueError, OSError):  # caught mid-save
            sources = []
        if ready(sources) or time.monotonic() > deadline:
            return sources
        time.sleep(0.05)  # the room saves on its own schedule: there is no event to wait for


def _wait_for_ready(client: Any, timeout: float = 60) -> None:
    """Until the kernel answers kernel_info on shell and its status reaches us on iopub (no manager here:
    jupyter_client's wait_for_ready would take a kernel that is still starting for a dead one)."""
    from queue import Empty

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg_id = client.kernel_info()
        try:
            while client.get_shell_msg(timeout=1)["parent_header"].get("msg_id") != msg_id:
                pass
            while client.get_iopub_msg(timeout=1)["parent_header"].get("msg_id") != msg_id:
                pass
            return
        except Empty:
            continue
    raise TimeoutError("the notebook's kernel did not become ready")


def test_python_run_is_interrupted_at_its_time_limit_and_the_turn_goes_on(kernel, llm):
    code = "import time\ntime.sleep(60)"
    llm.script(
        Reply(tool_calls=[ToolCallSpec("python_run", {"code": code, "timeout": 0.5})]),
        Reply(text="It was too slow."),
    )
    started = time.monotonic()
    done = kernel.run("%%agent\nsleep")
    assert done.status == "ok", done.reply["content"]
    assert time.monotonic() - started < 20
    result = tool_messages(llm.requests[-1])[-1]
    assert "TimeoutError: the code ran longer than 0.5 s and was interrupted" in result
    assert done.shown("text/markdown")[-1] == "It was too slow."


def test_plan_runs_the_goal_as_tasks_in_the_live_namespace(kernel, llm):
    task = {
        "id": "t1",
        "title": "Define planned",
        "description": "set planned = 1",
        "depends_on": [],
        "tools": ["python_run"],
        "notebooks": [],
        "estimate_s": 5,
        "acceptance": "planned exists",
    }
    llm.script(
        Reply(text=json.dumps({"tasks": [task]})),
        Reply(tool_calls=[ToolCallSpec("python_run", {"code": "planned = 1"})]),
        Reply(text="planned is set"),
    )
    done = kernel.run("%%agent --plan --yes\nset planned")
    assert done.status == "ok", done.reply["content"]
    plans = [s for s in done.shown("text/markdown") if s.startswith("**Plan**")]
    assert plans and "✓ t1: Define planned" in plans[-1]
    blocks = [b for b in done.shown("text/html") if "planned = 1" in b]
    assert blocks and "✓ [t1] <code>python_run</code>" in blocks[-1]  # the code says which task ran it
    assert "Plan finished: 1 of 1 tasks done." in done.shown("text/markdown")[-1]
    assert kernel.value("planned") == 1


# -- plan approval in a widget ------------------------------------------------------------------------------


def plan_task(task_id: str, title: str, code: str, depends_on: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": task_id,
        "title": title,
        "description": f"run {code}",
        "depends_on": depends_on or [],
        "tools": ["python_run"],
        "notebooks": [],
        "estimate_s": 5,
        "acceptance": "done",
    }


class Widgets:
    """The widgets a cell opened (from its comm_open messages), and a person's clicks and edits on them."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.models: list[dict[str, Any]] = []  # {"id", "model", "state"} in the order they were opened

    def until_button(self, description: str) -> Any:
        """A ``collect`` predicate: records every widget opened, true once a button so named is open."""
        return self.until(lambda: bool(self.find("ButtonModel", description=description)))

    def until_label(self, part: str) -> Any:
        """A ``collect`` predicate: records every widget opened, true once a label showing ``part`` is open."""
        return self.until(lambda: bool(self.labels(part)))

    def until(self, shown: Any) -> Any:
        def seen(msg: dict[str, Any]) -> bool:
            content = msg["content"]
            if msg["header"]["msg_type"] == "comm_open" and content.get("target_name") == "jupyter.widget":
                state = content["data"]["state"]
                self.models.append({"id": content["comm_id"], "model": state["_model_name"], "state": state})
            return shown()

        return seen

    def labels(self, part: str) -> list[str]:
        return [
            m["state"]["value"]
            for m in self.models
            if m["model"] == "LabelModel" and part in m["state"]["value"]
        ]

    def find(self, model: str, **state: Any) -> list[str]:
        return [
            m["id"]
            for m in self.models
            if m["model"] == model and all(m["state"].get(k) == v for k, v in state.items())
        ]

    def send(self, comm_id: str, data: dict[str, Any]) -> None:
        msg = self.kernel.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        self.kernel.kc.shell_channel.send(msg)

    def set(self, comm_id: str, value: Any) -> None:
        self.send(comm_id, {"method": "update", "state": {"value": value}, "buffer_paths": []})

    def click(self, description: str) -> None:
        (button,) = self.find("ButtonModel", description=description)
        self.send(button, {"method": "custom", "content": {"event": "click"}})


def start_plan(kernel: Kernel, llm: ScriptedLLM, cell: str, *tasks: dict[str, Any]) -> tuple[str, Widgets]:
    """Start a ``%%agent --plan`` cell and wait (on messages) until its plan waits for approval."""
    llm.script(Reply(text=json.dumps({"tasks": list(tasks)})))
    msg_id = kernel.start(cell, allow_stdin=True)  # a person is there to press the buttons
    widgets = Widgets(kernel)
    kernel.collect(msg_id, until=widgets.until_button("Cancel"))  # the view's last button
    assert widgets.find("ButtonModel", description="Approve and run"), "no approval view was shown"
    return msg_id, widgets


def finish(kernel: Kernel, msg_id: str) -> Execution:
    return Execution(kernel.reply(msg_id, timeout=90), kernel.collect(msg_id))


def test_plan_waits_for_approval_and_runs_the_plan_as_edited(kernel, llm):
    msg_id, widgets = start_plan(
        kernel,
        llm,
        "%%agent --plan\nset approved",
        plan_task("t1", "Define approved", "approved = 2"),
        plan_task("t2", "Print approved", "print(approved)", ["t1"]),
    )
    assert len(llm.requests) == 1  # only the planning call: nothing runs before the approval
    (title,) = widgets.find("TextModel", value="Define approved")
    _keep_t1, keep_t2 = widgets.find("CheckboxModel", value=True)
    llm.script(
        Reply(tool_calls=[ToolCallSpec("python_run", {"code": "approved = 2"})]),
        Reply(text="approved is set"),
    )
    widgets.set(title, "Define approved as two")
    widgets.set(keep_t2, False)  # the person drops the second task
    widgets.click("Approve and run")
    done = finish(kernel, msg_id)
    assert done.status == "ok", done.reply["content"]
    plans = [s for s in done.shown("text/markdown") if s.startswith("**Plan**")]
    assert "✓ t1: Define approved as two" in plans[-1] and "t2" not in plans[-1]
    assert "*Plan approved.*" in done.shown("text/markdown")
    task_prompt = json.dumps(llm.requests[1]["messages"])
    assert "Define approved as two" in task_prompt and "Print approved" not in task_prompt
    assert len(llm.requests) == 3
    assert kernel.value("approved") == 2


def test_an_invalid_edit_is_refused_in_place_and_cancel_ends_the_turn(kernel, llm):
    msg_id, widgets = start_plan(
        kernel, llm, "%%agent --plan\nnever", plan_task("t1", "Never run", "never = 1")
    )
    (deps,) = widgets.find("TextModel", placeholder="after (ids)", value="")[:1]
    widgets.set(deps, "t9")  # a dependency on a task that does not exist
    widgets.click("Approve and run")

    def refused(msg: dict[str, Any]) -> bool:
        data = msg["content"].get("data") or {}
        value = (data.get("state") or {}).get("value", "")
        return msg["header"]["msg_type"] == "comm_msg" and str(value).startswith("⚠")

    shown = kernel.collect(msg_id, until=refused)
    reason = shown[-1]["content"]["data"]["state"]["value"]
    assert refused(shown[-1]) and "t9" in reason, reason
    widgets.click("Cancel")
    done = finish(kernel, msg_id)
    assert done.status == "ok", done.reply["content"]
    assert "*⏹ Cancelled.*" in done.shown("text/markdown")
    assert len(llm.requests) == 1  # the plan never ran
    assert kernel.value("'never' in globals()") is False


def test_plan_in_a_frontend_that_cannot_ask_does_not_run(kernel, llm):
    llm.script(Reply(text=json.dumps({"tasks": [plan_task("t1", "Never run", "never = 1")]})))
    done = kernel.run("x = 1\n%agent --plan never")  # inside other code: blocking, no stdin here
    assert done.status == "ok", done.reply["content"]
    assert "cannot ask for it, so it did not run" in "".join(done.shown("text/markdown"))
    assert len(llm.requests) == 1


def test_the_stop_button_cancels_a_running_turn(kernel, llm):
    llm.script(Stall(60, after_text="Let me think"))
    msg_id = kernel.start("%%agent\nthink for a long time", allow_stdin=True)
    widgets = Widgets(kernel)
    kernel.collect(msg_id, until=widgets.until_button("Stop"))
    llm.wait_for_requests(1, timeout=60)  # the turn is under way: the model is streaming its answer
    widgets.click("Stop")
    done = finish(kernel, msg_id)
    assert done.status == "ok", done.reply["content"]
    assert "*⏹ Cancelled.*" in done.shown("text/markdown")
    assert kernel.value("1 + 1") == 2


# -- approvals: a plan task's, and where nobody can answer ----------------------------------------------------


def test_a_plan_tasks_approval_is_asked_under_the_cell_naming_the_task(kernel, llm):
    shell_task = {**plan_task("t1", "Write the marker file", "echo"), "tools": ["shell_run"]}
    msg_id, widgets = start_plan(kernel, llm, "%%agent --plan\nleave a marker", shell_task)
    llm.script(
        Reply(tool_calls=[ToolCallSpec("shell_run", {"command": "echo ok > approved-marker.txt"})]),
        Reply(text="The marker is written."),
    )
    widgets.click("Approve and run")
    kernel.collect(msg_id, until=widgets.until_label("shell_run"))
    (question,) = widgets.labels("shell_run")
    assert question.startswith("Task t1 · Write the marker file: Allow shell_run("), question
    widgets.click("Allow once")
    done = finish(kernel, msg_id)
    assert done.status == "ok", done.reply["content"]
    assert "Allowed once." in done.shown("text/plain")
    assert kernel.value("open('approved-marker.txt').read()") == "ok\n"


def test_nbclient_refuses_a_call_that_would_ask_at_once_and_says_how_to_allow_it(tmp_path, llm):
    """nbconvert and papermill run notebooks through nbclient: no one can answer there (no stdin, and no one to
    press a button), so a call that would ask is refused at once instead of waiting for the approval timeout,
    and a plan that needs approval does not run."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_agent", id="load"),
        nbformat.v4.new_code_cell("%%agent\nleave a marker file with the shell", id="ask"),
        nbformat.v4.new_code_cell("%%agent --plan\nleave a marker file in steps", id="plan"),
    ]
    llm.script(
        Reply(tool_calls=[ToolCallSpec("shell_run", {"command": "echo ran > marker.txt"})]),
        Reply(text="I could not leave the marker here."),
        Reply(text=json.dumps({"tasks": [plan_task("t1", "Write the marker", "echo")]})),
    )
    client = NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=kernel_env(tmp_path, llm))

    refusal = (
        "shell_run needs approval and nobody can answer here, so it did not run; run with %%agent --yes, "
        'or set c.JupyterAgent.tool_policy = {"shell_run": "allow"}'
    )
    outputs = {cell.id: json.dumps(cell.outputs) for cell in nb.cells}
    assert json.dumps(refusal)[1:-1] in outputs["ask"]  # shown under the cell, in the call's block
    assert refusal in tool_messages(llm.requests[1])[-1]  # and read by the model
    assert "I could not leave the marker here." in outputs["ask"]
    assert not (tmp_path / "marker.txt").exists()
    assert "cannot ask for it, so it did not run" in outputs["plan"]
    assert len(llm.requests) == 3  # the plan was made, never run
    # Nothing under the cells waits for a click that cannot come.
    assert "application/vnd.jupyter.widget-view+json" not in outputs["ask"] + outputs["plan"]
