"""The load benchmark, run small: every section is printed and nothing failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = (
    "errors: ",
    "throughput: ",
    "token delivery ",
    "REST (all) ",
    "edit propagation ",
    "memory: ",
    "cpu: ",
    "soak: ",
    "client side: ",
)


@pytest.mark.timeout(120)
def test_should_run_the_load_benchmark_small_without_errors():
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "load.py"),
        "--sessions=20",
        "--rest-clients=10",
        "--collaborators=5",
        "--seconds=5",
        "--soak=3",
        "--turn-every=2",
    ]
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=110, env=env, cwd=ROOT)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr[-3000:]
    lines = out.splitlines()
    for section in SECTIONS:
        assert any(line.lstrip().startswith(section) for line in lines), f"no {section!r} line in:\n{out}"
    assert "errors: 0" in lines, out
    for name in ("token delivery", "REST (all)", "edit propagation", "memory", "cpu", "soak"):
        line = next(line for line in lines if line.startswith(name))
        assert "(n=0)" not in line and "nan" not in line, f"{name} was not measured: {line}"


def test_should_stamp_each_streamed_piece_with_the_moment_it_was_written():
    with ScriptedLLM(chunk_delay=0.02) as llm:
        llm.default = Reply(text="one two three", stamp=True)
        body = json.dumps({"model": "scripted", "messages": [], "stream": True}).encode()
        before = time.time()
        request = urllib.request.Request(f"{llm.base_url}/chat/completions", data=body, method="POST")
        raw = urllib.request.urlopen(request, timeout=10).read().decode()
        after = time.time()
    chunks = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: {")]
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    pieces = [p for p in pieces if p]
    assert [p.rpartition("@")[0] for p in pieces] == ["one", " two", " three"]
    stamps = [float(p.rpartition("@")[2]) for p in pieces]
    assert before <= stamps[0] < stamps[1] < stamps[2] <= after
    assert stamps[2] - stamps[0] >= 0.03  # written as they went out, 20 ms apart
