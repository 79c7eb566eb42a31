"""The embedded model's own process: ``python -m jupyter_agent.local_model.launcher '<json config>'``.

It serves the model over llama.cpp's OpenAI-compatible HTTP API on 127.0.0.1 with the runtime it is told
(the prebuilt ``xllamacpp``, imported only here, or the compiled ``llama_cpp.server``) and exits when no
registered client process is left (see :mod:`jupyter_agent.local_model.shared`), so the model's RAM is never
left behind, even when its clients were killed.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import threading
import time
from pathlib import Path
from typing import Any

from jupyter_agent.local_model.shared import Registry

CHECK_SECONDS = 0.5
EMPTY_CHECKS = 2  # consecutive checks without a client before the server exits


def watch(registry: Registry) -> None:
    empty = 0
    while True:
        time.sleep(CHECK_SECONDS)
        with registry.locked(blocking=False) as held:
            if not held:
                continue  # a client is starting, joining or leaving: look again next time
            if registry.live_clients():
                empty = 0
                continue
            empty += 1
            if empty >= EMPTY_CHECKS:
                registry.remove_info(os.getpid())
                print("jupyter-agent: no client left; the model server stops", flush=True)
                os._exit(0)


def serve_prebuilt(config: dict[str, Any]) -> None:
    import xllamacpp  # needs AVX2 on x86-64: the caller checked the CPU before starting this process

    params = xllamacpp.CommonParams()
    params.model.path = config["model"]
    params.model_alias = {config["alias"]}
    params.hostnames = ["127.0.0.1"]
    params.port = config["port"]
    params.n_ctx = config["n_ctx"]
    params.n_parallel = 1
    params.n_gpu_layers = 0
    params.cpuparams.n_threads = config["threads"]
    params.cpuparams_batch.n_threads = config["threads"]
    params.cache_ram_mib = config["cache_ram_mib"]  # llama.cpp's host-memory prompt cache (default 8 GB)
    params.slot_save_path = str(Path(config["slots"])) + os.sep  # joined to file names as a plain string
    params.ui = False
    params.verbosity = 1
    server = xllamacpp.Server(params)  # serves while this object lives
    print(f"jupyter-agent: xllamacpp {xllamacpp.__version__} serves {config['model']}", flush=True)
    threading.Event().wait()
    del server


def serve_compiled(config: dict[str, Any]) -> None:
    sys.argv = [
        "llama_cpp.server",
        *("--model", config["model"], "--model_alias", config["alias"]),
        *("--host", "127.0.0.1", "--port", str(config["port"])),
        *("--n_ctx", str(config["n_ctx"]), "--n_threads", str(config["threads"])),
        *("--logits_all", "False"),  # True reserves n_ctx x vocab floats: +0.5-1.7 GB
    ]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


def main(argv: list[str]) -> None:
    config = json.loads(argv[1])
    Path(config["slots"]).mkdir(parents=True, exist_ok=True)
    registry = Registry(Path(config["runtime_dir"]), config["key"])
    threading.Thread(target=watch, args=(registry,), daemon=True, name="clients").start()
    if config["runtime"] == "xllamacpp":
        serve_prebuilt(config)
    else:
        serve_compiled(config)


if __name__ == "__main__":
    main(sys.argv)
