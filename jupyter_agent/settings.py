"""The agent's settings: ``Configurable`` classes every process builds from the same Jupyter config files.

The server extension (:mod:`jupyter_agent.app`), the magics, the agent kernel and the ``jupyter agent`` CLI
each create :class:`JupyterAgent` from the Jupyter config they load (``c.JupyterAgent.model = ...`` in
``jupyter_server_config.py``, ``jupyter_config.json``, ``--JupyterAgent.model=...`` on a command line). The
settings come in groups (model, tools, browser, embedded model, planner, ...), each a ``Configurable`` of its
own; ``JupyterAgent`` holds them all, so every setting is ``c.JupyterAgent.<name>`` as people know it (a
group's own name works too, e.g. ``c.BrowserSettings.browser_pool_size``).

This module imports traitlets only: reading settings never imports the server, tornado, pycrdt or Playwright.
"""

from __future__ import annotations

import os
from typing import Any

from traitlets import Bool, Dict, Enum, Float, Int, List, Unicode, default, validate
from traitlets.config import Configurable

from jupyter_agent.tools.base import POLICIES


def _at_least_one(proposal: dict[str, Any]) -> int:
    if proposal["value"] < 1:
        raise ValueError(f"{proposal['trait'].name} must be at least 1")
    return proposal["value"]


def _not_negative(proposal: dict[str, Any]) -> int | float:
    if proposal["value"] < 0:
        raise ValueError(f"{proposal['trait'].name} must not be negative")
    return proposal["value"]


class ModelSettings(Configurable):
    """Which model answers, and how the agent talks to it."""

    model = Unicode(
        "",
        config=True,
        help="""The litellm model string, e.g. 'openai/gpt-4o-mini', 'anthropic/claude-3-5-sonnet-latest' or
        'openai/<name>' with model_options.api_base for any OpenAI-compatible server (a LiteLLM proxy,
        vLLM, llama.cpp). Defaults to the JUPYTER_AGENT_MODEL environment variable.""",
    )
    model_options = Dict(
        config=True,
        help="""Extra arguments for every litellm call: api_base, api_key, temperature, ... An api_key here is
        never logged; litellm's provider variables (OPENAI_API_KEY, ...) work too.""",
    )
    fallback_models = List(
        Unicode(), config=True, help="Models tried in order when the main model fails after its retries."
    )
    models = List(Unicode(), config=True, help="More models people may pick in the chat panel.")
    max_steps = Int(25, config=True, help="Most model calls in one turn before it stops (reason max_steps).")
    turn_timeout = Float(900.0, config=True, help="Seconds a whole turn may take before it is stopped.")
    max_turn_tokens = Int(0, config=True, help="Most prompt+completion tokens in one turn; 0 means no limit.")
    retries = Int(
        2, config=True, help="Retries per model on 429, 5xx and timeouts before any output streamed."
    )
    vision = Bool(
        None,
        allow_none=True,
        config=True,
        help="""Send images (screenshots, plots) to the model as image content. None: when litellm says the
        model supports vision; True/False: always/never (then the model gets a text note instead).""",
    )
    retry_backoff = Float(0.5, config=True, help="Seconds before the first retry; doubled for each next one.")
    request_timeout = Float(120.0, config=True, help="Seconds to wait for a model's first chunk.")
    chunk_timeout = Float(60.0, config=True, help="Seconds allowed between two chunks of a model's stream.")
    transcription_model = Unicode(
        "whisper-1",
        config=True,
        help="litellm model for voice input (speech to text), e.g. 'whisper-1' or 'groq/whisper-large-v3'.",
    )

    context_tokens = Int(
        0,
        config=True,
        help="""The model's context window in tokens: every request is fitted into it (long tool results cut,
        earlier conversation summarised). 0: litellm's figure for the model, or the embedded model's n_ctx.""",
    )

    @default("model")
    def _model_from_environment(self) -> str:  # read when the settings are made, not when imported
        return os.environ.get("JUPYTER_AGENT_MODEL", "")

    @validate("max_steps")
    def _check_steps(self, proposal: dict[str, Any]) -> int:
        return _at_least_one(proposal)


class ToolSettings(Configurable):
    """What the agent's tools may do, and who is asked first."""

    tool_policy = Dict(
        Unicode(),
        config=True,
        help="Policy per tool name: 'allow', 'ask' (a person approves each call) or 'deny'. shell_run asks by default.",
    )
    approval_timeout = Float(
        600.0,
        config=True,
        help="Seconds an approval request waits for a person before the turn ends with an error.",
    )
    cell_timeout = Float(
        300.0, config=True, help="Default seconds a cell may run before the kernel is interrupted."
    )
    edit_mode = Enum(
        ["live", "review"],
        "live",
        config=True,
        help="""How the agent's notebook edits land: 'live' (the default) applies them at once (each turn can
        still be undone); 'review' puts them in the live notebook marked as pending, for every collaborator to
        see, until a person accepts or rejects them (per turn or per cell). Each chat session can switch.""",
    )
    untrusted_content_policy = Unicode(
        "ask",
        config=True,
        help="""What happens once a turn has read content from outside the workspace (a web page, web_fetch, a
        browser snapshot): 'ask' (the default) makes its calls that run code or a shell, write files or open
        a new host ask a person first, for the rest of the turn, saying what was read; 'allow' lets them run
        as tool_policy says.""",
    )

    @validate("tool_policy")
    def _check_policy(self, proposal: dict[str, Any]) -> dict[str, str]:
        value = proposal["value"]
        bad = {k: v for k, v in value.items() if v not in POLICIES}
        if bad:
            raise ValueError(f"tool_policy values must be one of {POLICIES}; got {bad}")
        return value

    @validate("untrusted_content_policy")
    def _check_untrusted_content_policy(self, proposal: dict[str, Any]) -> str:
        if proposal["value"] not in ("ask", "allow"):
            raise ValueError(f"untrusted_content_policy must be 'ask' or 'allow'; got {proposal['value']!r}")
        return proposal["value"]

    mcp_servers = Dict(
        config=True,
        help="""MCP servers whose tools the agent may use (in the Jupyter server; kernels and the CLI skip them),
        by name: {"command": "npx", "args": [...], "env": {...}, "cwd": "..."} starts one on stdio;
        {"url": "https://...", "headers": {"Authorization": "Bearer ..."}} talks streamable HTTP. Its tools
        are named mcp_<name>_<tool>; they ask a person before each call unless "policy" says 'allow' (or
        tool_policy names the tool), and what they return is untrusted content. Optional: "timeout" (seconds
        per call, default 120). Env and header values are secrets: they never appear in logs or events.""",
    )

    @validate("mcp_servers")
    def _check_mcp_servers(self, proposal: dict[str, Any]) -> dict[str, Any]:
        from jupyter_agent.mcp.config import parse_servers

        parse_servers(proposal["value"])  # raises ValueError naming the entry and what to fix
        return proposal["value"]


class BrowserSettings(Configurable):
    """The headless browser, and where it and ``web_fetch`` may connect."""

    browser_executable = Unicode(
        "",
        config=True,
        help="Chromium to drive. Empty: Debian's /usr/bin/chromium if present, else Playwright's own.",
    )
    browser_endpoint = Unicode(
        "",
        config=True,
        help="""Use a remote browser instead of launching one: ws://... (a Playwright server) or http(s)://...
        (Chrome DevTools Protocol). Empty: launch Chromium on this machine.""",
    )
    browser_allow = List(
        Unicode(),
        config=True,
        help="URL patterns the browser may open (glob or re:regex); empty: any http(s) URL.",
    )
    browser_deny = List(
        Unicode(), config=True, help="URL patterns the browser must not open; checked before browser_allow."
    )
    browser_allow_file_urls = Bool(False, config=True, help="Let the browser open file: URLs.")
    browser_pool_size = Int(
        2, config=True, help="Browser contexts kept warm so a new chat never waits for one."
    )
    browser_idle_timeout = Float(
        600.0, config=True, help="Seconds after which an unused chat's browser context closes."
    )
    browser_cache_ttl = Float(
        60.0, config=True, help="Seconds a fetched page's result may be served from the cache."
    )
    browser_memory_limit_mb = Int(
        0, config=True, help="Restart the browser when its memory exceeds this (MB); 0: never."
    )
    allowed_networks = List(
        Unicode(),
        config=True,
        help="""Hosts, addresses and networks the browser and web_fetch may reach although they are not
        public. By default every loopback, private, link-local, multicast, reserved and cloud-metadata
        address is refused, in any spelling, on the address each request resolves to (redirects and a page's
        sub-resources included). Entries: a host name ('intranet.example.org'), an address ('127.0.0.1',
        '::1'), either with a port ('127.0.0.1:8000', '[::1]:8000', 'intranet.example.org:8080'), or a
        network ('10.1.0.0/16'). An entry with a port allows that port only. The Jupyter server's own
        address is reachable only through an entry naming it with its port (say '127.0.0.1:8888').""",
    )

    @validate("allowed_networks")
    def _check_allowed_networks(self, proposal: dict[str, Any]) -> list[str]:
        from jupyter_agent.browser.network import AllowedNetwork

        for entry in proposal["value"]:
            AllowedNetwork.parse(entry)  # raises ValueError naming the entry and the forms it may take
        return proposal["value"]


class LimitSettings(Configurable):
    """How much one person may use the model."""

    user_requests_per_minute = Int(
        0, config=True, help="Prompts one person may send per minute (all sessions together); 0: no limit."
    )
    user_tokens_per_day = Int(
        0,
        config=True,
        help="Model tokens (prompt + completion) one person may use per day (UTC); 0: no limit.",
    )
    user_cost_per_day = Float(
        0.0, config=True, help="US dollars of model use one person may spend per day (UTC); 0: no limit."
    )

    @validate("user_requests_per_minute", "user_tokens_per_day", "user_cost_per_day")
    def _check_limits(self, proposal: dict[str, Any]) -> int | float:
        return _not_negative(proposal)


class DataSettings(Configurable):
    """Where the agent keeps its sessions, audit log and backups, and what it hides in them."""

    db_path = Unicode(
        "",
        config=True,
        help="SQLite file for sessions, events and the audit log. Empty: <jupyter data dir>/agent/agent.db.",
    )
    redact_pii = Bool(
        False,
        config=True,
        help="""Also hide personal data from events, logs, the audit log and the model: e-mail addresses, phone
        numbers, payment card numbers (Luhn-checked) and IBANs (mod-97-checked). Secrets (API keys, tokens,
        passwords, private keys, the configured api_key) are always hidden.""",
    )
    audit_log_file = Unicode(
        "",
        config=True,
        help="""Also append every audit entry, with its hash, to this file as one JSON line (for log shipping).
        Empty: the audit log is kept in the agent's database only.""",
    )
    backup_dir = Unicode(
        "", config=True, help="Where file backups go. Empty: <jupyter data dir>/agent/backups."
    )


class ServerSettings(Configurable):
    """The Jupyter server's chat: who sees a session, and the size of a client's messages."""

    session_privacy = Unicode(
        "auto",
        config=True,
        help="""Who sees a chat session: 'private' (its owner, and the collaborators of its notebook once the
        owner shares it), 'open' (everyone who may use the agent), or 'auto': private when the server tells
        people apart (JupyterHub, a custom IdentityProvider), open for a server with one person's token or
        password.""",
    )
    max_message_bytes = Int(
        1_048_576, config=True, help="Largest WebSocket message accepted from a client, in bytes."
    )

    @validate("session_privacy")
    def _check_session_privacy(self, proposal: dict[str, Any]) -> str:
        if proposal["value"] not in ("auto", "private", "open"):
            raise ValueError(
                f"session_privacy must be 'auto', 'private' or 'open'; got {proposal['value']!r}"
            )
        return proposal["value"]

    @validate("max_message_bytes")
    def _check_message_bytes(self, proposal: dict[str, Any]) -> int:
        return _at_least_one(proposal)


class PlannerSettings(Configurable):
    """Plans: how many tasks run at once, and how failures are retried and re-planned."""

    max_parallel_tasks = Int(
        3,
        config=True,
        help="""Most tasks of one plan that run at the same time (each is an agent turn of its own). Tasks
        that edit the same notebook never run at the same time whatever this is.""",
    )
    task_retries = Int(
        1, config=True, help="Times a failed plan task is retried before the rest of the plan is re-planned."
    )
    max_replans = Int(
        2, config=True, help="Times one plan may be re-planned after failed tasks before the plan fails."
    )

    @validate("max_parallel_tasks")
    def _check_parallel(self, proposal: dict[str, Any]) -> int:
        return _at_least_one(proposal)

    @validate("task_retries", "max_replans")
    def _check_retries(self, proposal: dict[str, Any]) -> int | float:
        return _not_negative(proposal)


class EmbeddedModelSettings(Configurable):
    """The offline model the agent runs when no model is configured."""

    local_model = Unicode(
        "qwen2.5-coder-1.5b",
        config=True,
        help="""The embedded model used when no model is configured (and the 'local' extra is installed):
        'qwen2.5-coder-1.5b' (default), 'qwen2.5-coder-0.5b' (the 'local-small' extra: half the RAM, twice
        as fast, weaker tool calls) or 'smollm2-135m' (wiring checks only). 'none' turns it off. Defaults to
        the JUPYTER_AGENT_LOCAL_MODEL environment variable.""",
    )
    local_model_threads = Int(
        0, config=True, help="CPU threads for the embedded model; 0: every core this process may use."
    )

    @default("local_model")
    def _local_model_from_environment(self) -> str:
        return os.environ.get("JUPYTER_AGENT_LOCAL_MODEL", "qwen2.5-coder-1.5b")

    @validate("local_model")
    def _check_local_model(self, proposal: dict[str, Any]) -> str:
        from jupyter_agent.local_model.registry import MODELS

        value = proposal["value"]
        if value and value.lower() != "none" and value not in MODELS:
            raise ValueError(f"local_model must be one of {sorted(MODELS)} or 'none'; got {value!r}")
        return value


class ObservabilitySettings(Configurable):
    """What the agent reports about its own work: metrics, traces and logs."""

    prometheus_metrics = Bool(
        True,
        config=True,
        help="""Serve the agent's metrics (jupyter_agent_*) on the Jupyter server's /metrics, which requires the
        same login as the server unless ServerApp.authenticate_prometheus is False.""",
    )
    otel_endpoint = Unicode(
        "",
        config=True,
        help="""An OTLP/HTTP collector's traces URL (e.g. 'http://localhost:4318/v1/traces'): a span per turn,
        with a child span per model call and tool call, is sent there. Needs opentelemetry-sdk and
        opentelemetry-exporter-otlp-proto-http. Empty: no traces.""",
    )
    otel_service_name = Unicode(
        "jupyter-agent", config=True, help="The service.name the traces carry (tell servers apart by it)."
    )
    log_format = Enum(
        ["text", "json"],
        "text",
        config=True,
        help="""How the agent's own loggers write: 'text' (the host's format), or 'json': one JSON object per
        line on stderr, with the session, turn and tool call ids it belongs to.""",
    )


class JupyterAgent(
    ModelSettings,
    ToolSettings,
    BrowserSettings,
    LimitSettings,
    DataSettings,
    ServerSettings,
    PlannerSettings,
    EmbeddedModelSettings,
    ObservabilitySettings,
):
    """Every setting of the agent: ``c.JupyterAgent.<name>``."""


#: The settings groups, for an application's ``classes`` (``--help-all``, ``--generate-config``).
SETTINGS_CLASSES = [
    JupyterAgent,
    ModelSettings,
    ToolSettings,
    BrowserSettings,
    LimitSettings,
    DataSettings,
    ServerSettings,
    PlannerSettings,
    EmbeddedModelSettings,
    ObservabilitySettings,
]
