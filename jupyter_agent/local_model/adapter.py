"""Constrained tool calls for the embedded local model.

Small local models do not produce reliable free-form tool calls, but they do when every token is checked by a
grammar. So for the local model :class:`LocalAdapter` turns one agent step into a single JSON answer:
``{"name": <tool>, "arguments": {...}}`` or ``{"name": "final_answer", "arguments": {"text": ...}}``, sent as
``response_format={"type": "json_object", "schema": ...}`` (the server turns the schema into a constraint:
LLGuidance in llama.cpp's own server, a grammar in llama-cpp-python's, which rejects the ``json_schema`` type). The answer is parsed back into a
:class:`~jupyter_agent.engine.types.ToolCall` or into plain content, and the final answer's text streams to
``on_token`` while it is generated (the JSON string is decoded incrementally).

Prompts are compact and stable: one short system prompt with a trimmed tool list that stays byte-identical
between calls, so the llama.cpp server reuses the cached prefix and only new messages cost prompt time.

Reading a cold prompt takes this model tens of seconds, so requests ask the server for its prompt progress
(llama.cpp's own server streams it; llama-cpp-python's ignores the request), and the answer's progress is
told from the JSON as it streams: the final answer's text, or which tool is being called.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from jupyter_agent.engine.context import MEMORY_HEADING
from jupyter_agent.engine.llm import PROGRESS_REQUEST, ModelProgress, StreamHandlers
from jupyter_agent.engine.types import Completion, ToolCall

FINAL_ANSWER = "final_answer"

#: Tools the local model is offered (when the router has them and policy allows): few, so the prompt and the
#: grammar stay small. Browser tools and file patching are left to larger models.
DEFAULT_TOOLS: tuple[str, ...] = (
    "notebook_run_code",
    "notebook_read",
    "notebook_insert_cell",
    "notebook_run_cell",
    "notebook_edit_cell",
    "file_read",
    "file_write",
    "file_list",
    "shell_run",
)

LOCAL_SYSTEM_PROMPT = """You are Jupyter Agent, a coding assistant inside JupyterLab. You act by calling \
tools: each reply is one JSON object with the tool's name and its arguments. Call one tool at a time and \
wait for its result. To compute or check anything (data in files, statistics, math), write Python that \
prints what you need and run it with notebook_run_code; load data files there (pandas.read_csv for a CSV), \
not with notebook_read. If the code fails, read the error, look at what it names (e.g. print a table's \
columns) and run fixed code. Read a notebook before changing its cells. After notebook_insert_cell, run the \
new cell with notebook_run_cell and the cell_id it returned. Paths are relative to the workspace. When the \
task is done, or to answer a question, call final_answer with a short answer for the user in text: give the \
values your code printed, never guessed ones, in the format the user asked for."""

_MAX_DESCRIPTION = 90  # characters of each tool description in the prompt
_MAX_RESULT = 1500  # characters of a tool result the local model reads
_MAX_HISTORY = 7000  # characters of conversation kept (n_ctx 4096 holds prompt + history + answer)
_STARTED = 0.05  # seconds base_url may take before the call reports that the model is starting
_TOOL_NAME = re.compile(r'^\s*\{\s*"name"\s*:\s*"([^"\\]+)"')


def _first_sentence(text: str) -> str:
    text = " ".join((text or "").split())
    text = text.split(" (", 1)[0]  # asides usually describe optional arguments the local model does not get
    end = text.find(". ")
    if 0 < end < _MAX_DESCRIPTION:
        return text[: end + 1]
    return text if len(text) <= _MAX_DESCRIPTION else text[: _MAX_DESCRIPTION - 3].rstrip() + "..."


def _simple_type(value: Any) -> Any:
    if isinstance(value, list):
        kept = [t for t in value if t != "null"]
        return kept[0] if kept else "string"
    return value


def simplify_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A tool's parameter schema as the grammar sees it: the required arguments and the enums, all required.

    Descriptions, defaults, numeric bounds and other optional arguments are dropped (the grammar does not
    need them, and optional arguments only give a small model more ways to go wrong); an optional choice
    (an enum such as ``cell_type``) stays. A tool without required arguments keeps its first one.
    """
    properties = schema.get("properties") or {}
    required = [p for p in schema.get("required") or [] if p in properties]
    if not required and properties:
        required = [next(iter(properties))]
    required += [p for p, s in properties.items() if p not in required and "enum" in s]  # e.g. cell_type
    return {
        "type": "object",
        "properties": {name: _simplify_value(properties[name]) for name in required},
        "required": required,
        "additionalProperties": False,
    }


def _simplify_value(schema: dict[str, Any]) -> dict[str, Any]:
    if "enum" in schema:
        return {"enum": list(schema["enum"])}
    kind = _simple_type(schema.get("type", "string"))
    if kind == "object":
        return simplify_schema(schema) if schema.get("properties") else {"type": "object"}
    if kind == "array":
        items = schema.get("items")
        return {"type": "array", "items": _simplify_value(items) if isinstance(items, dict) else {}}
    return {"type": kind}


def _function(tool: dict[str, Any]) -> dict[str, Any]:
    return tool.get("function", tool)


def response_schema(tools: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The JSON schema of one answer: a call of one of ``tools`` or the final answer."""
    branches = []
    for tool in tools:
        fn = _function(tool)
        branches.append(_branch(fn["name"], simplify_schema(fn.get("parameters") or {})))
    final = {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
        "additionalProperties": False,
    }
    branches.append(_branch(FINAL_ANSWER, final))
    return {"anyOf": branches}


def _branch(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"const": name}, "arguments": arguments},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def system_prompt(tools: Iterable[dict[str, Any]], base: str = LOCAL_SYSTEM_PROMPT) -> str:
    """The compact system prompt: instructions plus one line per tool."""
    lines = [base, "", "Tools:"]
    for tool in tools:
        fn = _function(tool)
        args = ", ".join(simplify_schema(fn.get("parameters") or {})["properties"])
        lines.append(f"- {fn['name']}({args}): {_first_sentence(fn.get('description', ''))}")
    lines.append(f"- {FINAL_ANSWER}(text): Finish with the answer for the user.")
    return "\n".join(lines)


class FinalTextDecoder:
    """Decodes the final answer's text from the streamed JSON, piece by piece.

    Feed it the raw chunks; it returns the newly decoded characters of ``arguments.text`` once the stream is
    known to be ``{"name": "final_answer", "arguments": {"text": "...`` (whitespace between tokens allowed),
    and nothing for a tool call.
    """

    _TARGET = '{"name":"final_answer","arguments":{"text":"'

    def __init__(self) -> None:
        self.state = "prefix"  # prefix -> text -> done, or prefix -> other
        self._pos = 0
        self._raw = ""  # undecoded characters of the string value (an escape may be incomplete)
        self.text = ""  # decoded so far

    def feed(self, chunk: str) -> str:
        out: list[str] = []
        for char in chunk:
            if self.state == "prefix":
                if char.isspace():
                    continue
                if char == self._TARGET[self._pos]:
                    self._pos += 1
                    if self._pos == len(self._TARGET):
                        self.state = "text"
                else:
                    self.state = "other"
            elif self.state == "text":
                if char == '"' and not self._in_escape():
                    out.append(self._decode(final=True))
                    self.state = "done"
                else:
                    self._raw += char
        if self.state == "text":
            out.append(self._decode(final=False))
        decoded = "".join(out)
        self.text += decoded
        return decoded

    def _in_escape(self) -> bool:
        backslashes = len(self._raw) - len(self._raw.rstrip("\\"))
        return backslashes % 2 == 1

    def _decode(self, final: bool) -> str:
        raw = self._raw
        cut = len(raw)
        if not final:
            # hold back an unfinished escape (\, \u12) and a high surrogate that waits for its pair
            match = re.search(r"\\(u[0-9a-fA-F]{0,3})?$", raw)
            if match and not self._escaped_backslash_before(raw, match.start()):
                cut = match.start()
            surrogate = re.search(r"\\u[dD][89abAB][0-9a-fA-F]{2}$", raw[:cut])
            if surrogate and not self._escaped_backslash_before(raw, surrogate.start()):
                cut = surrogate.start()
        piece, self._raw = raw[:cut], raw[cut:]
        if not piece:
            return ""
        try:
            return json.loads(f'"{piece}"')
        except json.JSONDecodeError:  # not valid JSON text (cannot happen under the grammar): show it raw
            return piece

    @staticmethod
    def _escaped_backslash_before(raw: str, index: int) -> bool:
        """Whether the backslash at ``index`` is itself escaped (preceded by an odd run of backslashes)."""
        run = len(raw[:index]) - len(raw[:index].rstrip("\\"))
        return run % 2 == 1


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "\n".join(p for p in parts if p)
    return "" if content is None else str(content)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[... {len(text) - limit} more characters cut]"


def _clip_middle(text: str, limit: int) -> str:
    """A tool result's start and end, the middle cut: an error's name comes first, and what ends a result
    (the error's last frame, the values printed last, a note on the variables) is often what matters."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 5
    tail = limit - head
    return f"{text[:head]}\n[... {len(text) - limit} characters cut ...]\n{text[-tail:]}"


def _call_json(name: str, arguments: Any) -> str:
    return json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)


def local_messages(messages: list[dict[str, Any]], system: str) -> list[dict[str, Any]]:
    """The conversation rewritten for the local model: plain user/assistant turns, recent ones first kept.

    The model's earlier answers appear as the JSON it produced, tool results as user messages, so any chat
    template works (no tool roles needed) and the model sees its own output format.
    """
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []

    def add(role: str, text: str) -> None:
        if out and out[-1]["role"] == role:
            out[-1]["content"] += "\n\n" + text
        else:
            out.append({"role": role, "content": text})

    for message in messages:
        role = message.get("role")
        if role == "system":
            memory = str(message.get("content") or "").partition(MEMORY_HEADING)[2].strip()
            if memory:  # the earlier conversation, summarised (engine.context): the model keeps it
                system = f"{system}\n\n{MEMORY_HEADING}\n{_clip(memory, _MAX_RESULT)}"
            continue
        if role == "assistant":
            calls = message.get("tool_calls") or []
            for call in calls:
                fn = call.get("function") or {}
                names[call.get("id", "")] = fn.get("name", "")
                try:
                    arguments = json.loads(fn.get("arguments") or "{}")
                except json.JSONDecodeError:
                    arguments = fn.get("arguments")
                add("assistant", _call_json(fn.get("name", ""), arguments))
            if not calls:
                add("assistant", _call_json(FINAL_ANSWER, {"text": _text_of(message.get("content"))}))
        elif role == "tool":
            name = names.get(message.get("tool_call_id", ""), "the tool")
            add("user", f"Result of {name}:\n{_clip_middle(_text_of(message.get('content')), _MAX_RESULT)}")
        else:
            add("user", _clip(_text_of(message.get("content")), _MAX_RESULT * 2))
    kept: list[dict[str, Any]] = []
    used = 0
    for message in reversed(out):
        used += len(message["content"])
        if kept and used > _MAX_HISTORY:
            break
        kept.append(message)
    kept.reverse()
    while kept and kept[0]["role"] != "user":
        kept.pop(0)
    return [{"role": "system", "content": system}, *kept]


@dataclass
class LocalCall:
    """One prepared request to the local model and how to turn its answer back into a Completion."""

    model: str
    messages: list[dict[str, Any]]
    extra: dict[str, Any]
    handlers: StreamHandlers
    tool_names: frozenset[str]
    decoder: FinalTextDecoder = field(default_factory=FinalTextDecoder)
    downstream: StreamHandlers = field(default_factory=StreamHandlers)
    passthrough: bool = False  # the caller asked for its own JSON answer (the planner): return it as is
    #: Called after a complete answer: saves the server's prompt state (in a thread of its own).
    after: Callable[[], Any] | None = None
    chunks: int = 0  # streamed content pieces: llama.cpp's server sends one per token
    raw: str = ""  # the answer's first characters, until the tool it calls is known
    told: bool = False  # on_progress has been told what the answer is (text, or a call of which tool)

    def on_progress(self, progress: ModelProgress) -> None:
        """The call's progress for the caller; the answer's kind comes from its JSON (see :meth:`on_chunk`)."""
        if progress.phase != "output" or progress.output == "thinking" or self.passthrough:
            self.downstream.on_progress(progress)

    def on_chunk(self, chunk: str) -> None:
        """One streamed piece of the JSON answer: its final-answer text to ``on_token``, and what it is."""
        self.chunks += 1
        text = self.decoder.feed(chunk)
        if not self.told:
            self._tell(chunk)  # before the text it announces
        if text:
            self.downstream.on_token(text)

    def _tell(self, chunk: str) -> None:
        self.raw += chunk
        name = _TOOL_NAME.match(self.raw)
        if name is None and len(self.raw) < 200:
            return  # the name is not complete yet
        self.told = True
        if name is not None and name.group(1) == FINAL_ANSWER:
            self.downstream.on_progress(ModelProgress("output", output="text"))
            return
        tool = name.group(1) if name is not None and name.group(1) in self.tool_names else ""
        self.downstream.on_progress(ModelProgress("output", output="tool_call", tool=tool))

    def finish(self, completion: Completion) -> Completion:
        if not completion.usage.completion_tokens:  # the server sends no usage in streams: count tokens
            completion.usage.completion_tokens = self.chunks
        if self.after is not None and completion.content:
            self.after()
        if self.passthrough:
            return completion
        raw = completion.content
        completion.content = ""
        completion.tool_calls = []
        try:
            answer = json.loads(raw)
        except json.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("arguments"), dict):
            if self.decoder.state in ("text", "done"):  # a final answer cut off by max_tokens
                completion.content = self.decoder.text + "\n\n*(the local model's answer was cut off)*"
            else:
                completion.content = (
                    "The local model did not finish its reply (it stopped after "
                    f"{len(raw)} characters). Try a shorter request, or configure a larger model."
                )
            completion.finish_reason = "stop"
            return completion
        name, arguments = answer.get("name"), answer["arguments"]
        if name == FINAL_ANSWER or name not in self.tool_names:
            text = arguments.get("text") if name == FINAL_ANSWER else None
            text = text if isinstance(text, str) else raw
            if text.startswith(self.decoder.text):  # stream what the decoder could not (if anything)
                rest = text[len(self.decoder.text) :]
                if rest:
                    self.downstream.on_token(rest)
            completion.content = text
            completion.finish_reason = "stop"
            return completion
        completion.tool_calls = [
            ToolCall(id=f"call_{uuid.uuid4().hex[:12]}", name=name, arguments=json.dumps(arguments))
        ]
        completion.finish_reason = "tool_calls"
        return completion


@dataclass
class LocalAdapter:
    """Routes one model name to the embedded llama.cpp server with constrained JSON answers.

    ``base_url`` is awaited before each call: it starts (or restarts) the server when needed and returns
    its ``http://127.0.0.1:<port>/v1``.
    """

    model: str  # the name people see and configure, e.g. "local/qwen2.5-coder-1.5b"
    base_url: Callable[[], Awaitable[str]]
    served_name: str = "local"
    tools: tuple[str, ...] = DEFAULT_TOOLS
    max_tokens: int = 1024
    temperature: float = 0.0
    #: The server's prompt state on disk (``restore_prompt``, ``save_prompt_later``), or None.
    prompt_state: Any = None
    _cache: dict[tuple[str, ...], tuple[str, dict[str, Any]]] = field(default_factory=dict, repr=False)

    def handles(self, model: str | None) -> bool:
        return bool(model) and model == self.model

    def _chosen(self, tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        by_name = {_function(t)["name"]: t for t in tools or []}
        return [by_name[name] for name in self.tools if name in by_name]

    def _prompt_and_schema(self, tools: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        key = tuple(json.dumps(t, sort_keys=True) for t in tools)
        if key not in self._cache:
            self._cache[key] = (system_prompt(tools), response_schema(tools))
        return self._cache[key]

    async def prepare(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        handlers: StreamHandlers,
        extra: dict[str, Any],
    ) -> LocalCall:
        if extra.get("response_format"):
            return await self._passthrough(messages, handlers, extra)
        chosen = self._chosen(tools)
        system, schema = self._prompt_and_schema(chosen)
        forced = _forced_tool(extra.pop("tool_choice", None))
        if forced == FINAL_ANSWER or (forced and forced in {_function(t)["name"] for t in chosen}):
            schema = {"anyOf": [b for b in schema["anyOf"] if b["properties"]["name"]["const"] == forced]}
        stable = system
        note = _extra_system(messages)
        if note:  # after the stable prefix, so the server's prompt cache still covers the tool list
            system = f"{system}\n\n{note}"
        api_base = await self._base_url(handlers)
        after = None
        if self.prompt_state is not None:
            # A fresh server loads the saved state of this prompt (ms instead of seconds of prompt reading)
            await asyncio.to_thread(self.prompt_state.restore_prompt, stable)
            after = functools.partial(self.prompt_state.save_prompt_later, stable)
        call = LocalCall(
            model=f"openai/{self.served_name}",
            messages=local_messages(messages, system),
            after=after,
            extra={
                **extra,
                "api_base": api_base,
                "api_key": "local",
                "response_format": {"type": "json_object", "schema": schema},
                "max_tokens": extra.get("max_tokens") or self.max_tokens,
                "temperature": self.temperature,
                "extra_body": {**(extra.get("extra_body") or {}), **PROGRESS_REQUEST},
            },
            handlers=handlers,
            tool_names=frozenset(_function(t)["name"] for t in chosen),
            downstream=handlers,
        )
        call.handlers = StreamHandlers(
            on_token=call.on_chunk,
            on_thinking=handlers.on_thinking,
            on_retry=handlers.on_retry,
            on_progress=call.on_progress,
        )
        return call

    async def _base_url(self, handlers: StreamHandlers) -> str:
        """The server's URL; says the model is starting when it is not there at once (first use: seconds)."""
        url = asyncio.ensure_future(self.base_url())
        try:
            await asyncio.wait_for(asyncio.shield(url), _STARTED)
        except TimeoutError:
            handlers.on_progress(ModelProgress("starting"))
        except BaseException:
            url.cancel()
            raise
        return await url

    async def _passthrough(
        self, messages: list[dict[str, Any]], handlers: StreamHandlers, extra: dict[str, Any]
    ) -> LocalCall:
        """A caller's own structured answer (e.g. the planner's ``json_schema``), as llama.cpp takes it."""
        response_format = dict(extra["response_format"])
        if response_format.get("type") == "json_schema":  # llama.cpp's server answers HTTP 500 to this type
            schema = (response_format.get("json_schema") or {}).get("schema")
            response_format = {"type": "json_object", **({"schema": schema} if schema else {})}
        plain = [
            {
                "role": m.get("role") if m.get("role") in ("system", "assistant") else "user",
                "content": _text_of(m.get("content")),
            }
            for m in messages
        ]
        return LocalCall(
            model=f"openai/{self.served_name}",
            messages=plain,
            extra={
                **extra,
                "api_base": await self._base_url(handlers),
                "api_key": "local",
                "response_format": response_format,
                "max_tokens": extra.get("max_tokens") or self.max_tokens,
                "temperature": self.temperature,
                "extra_body": {**(extra.get("extra_body") or {}), **PROGRESS_REQUEST},
            },
            handlers=handlers,
            tool_names=frozenset(),
            downstream=handlers,
            passthrough=True,
        )


def _forced_tool(choice: Any) -> str | None:
    """The one branch the grammar allows: a named tool, or the final answer for tool_choice "none"."""
    if isinstance(choice, dict):
        return (choice.get("function") or {}).get("name")
    return FINAL_ANSWER if choice == "none" else None


def _extra_system(messages: list[dict[str, Any]]) -> str:
    """What the agent's system prompt adds beyond the standard one (failing tools, a task's brief)."""
    from jupyter_agent.engine.loop import SYSTEM_PROMPT

    texts = [_text_of(m.get("content")) for m in messages if m.get("role") == "system"]
    extra = []
    for text in texts:
        extra.append(text[len(SYSTEM_PROMPT) :].strip() if text.startswith(SYSTEM_PROMPT) else text.strip())
    return _clip("\n".join(e for e in extra if e), 1200)
