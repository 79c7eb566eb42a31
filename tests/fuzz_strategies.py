"""Hypothesis strategies for every REST body and WebSocket frame of the agent: well-typed but odd values and
arbitrary ones (wrong types, long and unusual text, paths that try to leave the root, NUL bytes, huge
numbers, missing and extra fields), and raw bytes that are not JSON at all.

The cases are plain data (:class:`HttpCase`, :class:`WsCase`, :class:`ConnectCase`); :mod:`tests.fuzz_kit`
sends them to a real server and checks what must hold. Strings may hold placeholders that only the running
server knows, replaced just before sending: ``{SESSION}`` (a fresh session of the case), ``{ROOT}`` (the
server's root) and ``{OUTSIDE}`` (a sentinel directory next to the root that must never change).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from jupyter_agent.browser.person_input import ACTIONS as INPUT_ACTIONS
from jupyter_agent.engine.scheduler import ACTIONS as TASK_ACTIONS
from jupyter_agent.engine.session import DECISIONS

SESSION, ROOT, OUTSIDE = "{SESSION}", "{ROOT}", "{OUTSIDE}"
#: The fixed plan the fuzz model (:func:`tests.fuzz_kit.fuzz_model`) proposes: task ``b`` depends on ``a``.
PLAN_TASK_IDS = ("a", "b")

# -- leaves -------------------------------------------------------------------------------------------------

#: Paths that try to get out of the root: traversal, absolute paths, the root's own symlinks to the sentinel
#: directory outside it (``escape`` -> ``../outside``, ``escape_file`` -> ``../outside/secret.txt``), NULs.
NASTY_PATHS = [
    "../../etc/passwd",
    "../outside/secret.txt",
    "..",
    "/etc/passwd",
    f"{OUTSIDE}/secret.txt",
    f"{OUTSIDE}/new.txt",
    f"{ROOT}/../outside/secret.txt",
    f"{ROOT}/notes.txt",
    "escape/secret.txt",
    "escape/new.txt",
    "escape_file",
    "escape/../escape/secret.txt",
    "notes.txt",
    "notes.txt\x00.ipynb",
    "\x00",
    "a\x00/../../x",
    "~/.bashrc",
    "C:\\Windows\\win.ini",
    "..\\..\\outside\\secret.txt",
    "%2e%2e/%2e%2e/etc/passwd",
    "file:///etc/passwd",
    "",
    " ",
    ".",
    "//",
    "notes.txt/",
    "ñøtés 📓.ipynb",
]
#: Text that breaks naive handling: lone surrogates (valid JSON escapes, not encodable as UTF-8), controls,
#: bidi overrides, markup, format strings, number-like and keyword-like strings.
NASTY_TEXT = [
    "",
    " ",
    "\n\t\r",
    "\ud800",
    "a\udfffb",
    "\x00",
    "\x1b[31m",
    "\u202egnp.exe",
    "\ufeff",
    "😀" * 10,
    "null",
    "true",
    "NaN",
    "-1",
    "1e999",
    "<script>alert(1)</script>",
    "{0}{1}%s%d{{7*7}}${x}",
    "' OR 1=1 --",
    "ok",
    "[SECRET_00000000]",
    "sk-test-secret-key-123456",
]
HUGE_INTS = [-1, 0, 2**31, 2**53 + 1, 2**63, -(2**63) - 1, 10**30, -(10**30)]


def text() -> st.SearchStrategy[str]:
    """Any text: short unicode, the nasty strings, paths, and (rarely) long strings up to 100,000 chars."""
    long = st.builds(
        lambda n, c: c * n, st.integers(1_000, 100_000), st.sampled_from(["x", "é", "😀", "\x00", "\ud800"])
    )
    return st.one_of(
        st.text(max_size=40),
        st.sampled_from(NASTY_TEXT),
        st.sampled_from(NASTY_PATHS),
        long,
    )


def paths() -> st.SearchStrategy[str]:
    """Paths a request may name: the nasty ones and joins of traversal-prone parts."""
    parts = st.sampled_from(["..", ".", "", "escape", "escape_file", "outside", "etc", "notes.txt", "a b"])
    joined = st.builds(
        lambda prefix, items: prefix + "/".join(items),
        st.sampled_from(["", "/", f"{ROOT}/", f"{OUTSIDE}/", "./"]),
        st.lists(st.one_of(parts, st.text(max_size=6)), min_size=1, max_size=6),
    )
    return st.one_of(st.sampled_from(NASTY_PATHS), joined)


def integers() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(), st.sampled_from(HUGE_INTS))


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        integers(),
        st.floats(),  # NaN and ±Infinity too: json.dumps writes them and the server's json.loads reads them
        text(),
    )


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Arbitrary JSON values, nested a few levels deep."""
    keys = st.one_of(st.text(max_size=10), st.sampled_from(["type", "id", "text", "path", "__proto__", ""]))
    return st.recursive(
        scalars(),
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each as often as its weight says; shrinks towards the first. (``one_of``
    cannot weigh: it treats a strategy given twice as one.)"""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(lambda s: s)


def odd(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field's value: mostly one of the right type (but odd), sometimes anything at all."""
    return weighted((3, good), (1, json_values(6)))


def objects(
    required: dict[str, st.SearchStrategy[Any]],
    optional: dict[str, st.SearchStrategy[Any]] | None = None,
) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the given fields, each of the right type but odd or of any type, the optional ones
    sometimes left out, now and then a required one too; and sometimes extra fields."""
    optional = {name: odd(value) for name, value in (optional or {}).items()}
    complete = st.fixed_dictionaries(
        {name: odd(value) for name, value in required.items()}, optional=optional
    )
    partial = st.fixed_dictionaries({}, optional={**{n: odd(v) for n, v in required.items()}, **optional})
    extra = weighted((2, st.just({})), (1, st.dictionaries(st.text(max_size=8), json_values(4), max_size=3)))
    return st.builds(lambda extra, chosen: {**extra, **chosen}, extra, weighted((4, complete), (1, partial)))


def bodies(shape: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes | None]:
    """A request body: the shaped object as JSON, any JSON value, bytes that are not JSON, or none."""
    return weighted(
        (6, st.builds(lambda v: json.dumps(v).encode(), shape)),
        (1, st.builds(lambda v: json.dumps(v).encode(), json_values())),
        (1, raw_bytes()),
        (1, st.none()),
    )


def raw_bytes() -> st.SearchStrategy[bytes]:
    """Bytes that are not (valid) JSON: random, truncated JSON, invalid UTF-8 in a string."""
    return st.one_of(
        st.binary(max_size=200),
        st.sampled_from([b"{", b'{"title": "x"', b'{"title": "\xff\xfe"}', b"\xef\xbb\xbf{}", b"[]", b"1"]),
        st.builds(lambda n: b"{" * n, st.integers(1, 5_000)),
    )


def model_names() -> st.SearchStrategy[str]:
    """Model names. Free text has no '/': a provider prefix that litellm knows (bedrock/, vertex_ai/...)
    would make it look for cloud credentials, which is slow and not what this fuzzes."""
    return st.one_of(
        st.sampled_from(
            ["openai/scripted", "scripted", "whisper-1", "openai/whisper-1", "", "no-such-model"]
        ),
        st.text(max_size=20).filter(lambda s: "/" not in s),
    )


# -- REST ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpCase:
    """One request to ``/api/agent/<path>``; ``route`` names the route for the counts."""

    route: str
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_type: str | None = "application/json"


def session_ids() -> st.SearchStrategy[str]:
    """A path segment for ``{id}``: mostly a real session, else a well-formed unknown id or any text."""
    return weighted(
        (6, st.just(SESSION)),
        (1, st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)),
        (1, st.builds(lambda s: quote(s, safe="", errors="surrogatepass"), st.one_of(short_text(), paths()))),
        (1, st.sampled_from(["..", "%2e%2e", "..%2F..%2Fetc", "a" * 65, "%00"])),
    )


def short_text() -> st.SearchStrategy[str]:
    """Text for a URL (the server refuses request heads over 64 KB before any handler sees them)."""
    return st.one_of(st.text(max_size=40), st.sampled_from(NASTY_TEXT), st.sampled_from(NASTY_PATHS)).filter(
        lambda s: "\ud800" not in s and "\udfff" not in s
    )


def queries(*names: str) -> st.SearchStrategy[dict[str, str]]:
    value = st.one_of(st.builds(str, integers()), short_text())
    return st.fixed_dictionaries({}, optional={name: value for name in names})


def _request(route: str, method: str, template: str, **parts: st.SearchStrategy[Any]) -> st.SearchStrategy:
    def build(
        sid: str = SESSION,
        query: dict[str, str] | None = None,
        body: bytes | None = None,
        ctype: str | None = None,
    ) -> HttpCase:
        return HttpCase(route, method, template.replace("{id}", sid), query or {}, body, ctype)

    if "ctype" not in parts:
        parts["ctype"] = content_types()
    return st.builds(build, **parts)


def content_types() -> st.SearchStrategy[str | None]:
    others = [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "application/json; charset=latin-1",
        "*/*;;;=",
    ]
    return weighted((4, st.just("application/json")), (1, st.sampled_from(others)))


def multipart(fields: list[tuple[str, str | None, bytes]], boundary: str = "fuzzboundary") -> bytes:
    """A multipart/form-data body of (name, filename or None, content) fields."""
    out = b""
    for name, filename, content in fields:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode("utf-8", "surrogatepass")
        out += content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def transcribe_cases() -> st.SearchStrategy[HttpCase]:
    names = st.one_of(st.sampled_from(["file", "model", "File", ""]), st.text(max_size=8))
    part = st.tuples(
        names,
        st.one_of(st.none(), paths(), st.text(max_size=20).filter(lambda s: '"' not in s)),
        st.one_of(
            st.binary(max_size=300), st.builds(lambda s: s.encode("utf-8", "surrogatepass"), model_names())
        ),
    )
    audio = st.tuples(st.just("file"), st.one_of(st.just("audio.webm"), paths()), st.binary(max_size=300))
    model = st.tuples(st.just("model"), st.none(), st.builds(lambda s: s.encode(), model_names()))
    form = st.builds(
        lambda parts: HttpCase(
            "POST transcribe",
            "POST",
            "transcribe",
            {},
            multipart(parts),
            "multipart/form-data; boundary=fuzzboundary",
        ),
        st.lists(weighted((2, audio), (1, model), (1, part)), max_size=4),
    )
    other = _request("POST transcribe", "POST", "transcribe", body=bodies(st.fixed_dictionaries({})))
    return weighted((3, form), (1, other))


def plan_tasks() -> st.SearchStrategy[dict[str, Any]]:
    ids = st.one_of(st.sampled_from([*PLAN_TASK_IDS, "c", ""]), st.text(max_size=8))
    return objects(
        {"id": ids, "title": text()},
        {
            "description": text(),
            "depends_on": st.lists(ids, max_size=3),
            "tools": st.lists(st.sampled_from(["python_run", "file_read", "shell_run", "nope"]), max_size=3),
            "notebooks": st.lists(paths(), max_size=2),
            "estimate_s": st.one_of(st.floats(), integers()),
            "acceptance": text(),
        },
    )


def http_cases() -> st.SearchStrategy[HttpCase]:
    """Every REST route with odd query strings and bodies, and a few methods a route does not have."""
    sid = session_ids()
    title_body = objects({}, {"title": text(), "shared": st.booleans()})
    restore_path = weighted((1, st.just("notes.txt")), (3, paths()))  # notes.txt has a backup to restore
    restore_body = objects(
        {"path": restore_path}, {"backup": st.one_of(text(), st.sampled_from(["x", "..", "../.."]))}
    )
    return st.one_of(
        _request("GET health", "GET", "health", query=queries("x")),
        _request("GET tools", "GET", "tools"),
        _request("GET sessions", "GET", "sessions"),
        _request("POST sessions", "POST", "sessions", body=bodies(objects({}, {"title": text()}))),
        _request("GET sessions/{id}", "GET", "sessions/{id}", sid=sid),
        _request("PATCH sessions/{id}", "PATCH", "sessions/{id}", sid=sid, body=bodies(title_body)),
        _request("DELETE sessions/{id}", "DELETE", "sessions/{id}", sid=sid, body=st.none() | raw_bytes()),
        _request(
            "GET sessions/{id}/events",
            "GET",
            "sessions/{id}/events",
            sid=sid,
            query=queries("after", "limit"),
        ),
        _request("GET sessions/{id}/plan", "GET", "sessions/{id}/plan", sid=sid),
        _request(
            "GET sessions/{id}/files/restore",
            "GET",
            "sessions/{id}/files/restore",
            sid=sid,
            query=queries("path"),
        ),
        _request(
            "POST sessions/{id}/files/restore",
            "POST",
            "sessions/{id}/files/restore",
            sid=sid,
            body=bodies(restore_body),
        ),
        _request("GET sessions/{id}/browser", "GET", "sessions/{id}/browser", sid=sid),
        _request("GET audit", "GET", "audit", query=queries("before", "limit")),
        transcribe_cases(),
        st.builds(
            lambda method, case: HttpCase(
                "other methods", method, case.path, case.query, case.body, case.content_type
            ),
            st.sampled_from(["PUT", "POST", "DELETE", "OPTIONS", "PATCH", "HEAD"]),
            st.one_of(
                _request("", "", "sessions/{id}", sid=sid, body=bodies(title_body)),
                _request("", "", "sessions", body=st.none() | raw_bytes()),
                _request("", "", "health", body=st.none() | raw_bytes()),
            ),
        ),
    )


# -- WebSocket frames ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One client message: ``payload`` sent as JSON text, or ``raw`` as is (``bytes`` as a binary message),
    or a text of ``oversize`` bytes more than the socket accepts. ``kind`` names it for the counts."""

    kind: str
    payload: Any = None
    raw: str | bytes | None = None
    oversize: int | None = None


@dataclass(frozen=True)
class WsCase:
    """Frames sent in order on one connection to a fresh session's ``socket`` ("session" or "browser");
    ``planned``: the session first gets a plan waiting for approval (so plan frames reach the planner)."""

    socket: str
    frames: tuple[Frame, ...]
    planned: bool = False

    @property
    def route(self) -> str:
        return f"{self.socket} ws"


@dataclass(frozen=True)
class ConnectCase:
    """A WebSocket handshake with an odd session id or ``after``."""

    socket: str
    session_id: str
    query: dict[str, str]

    @property
    def route(self) -> str:
        return f"{self.socket} ws connect"


def _frame(kind: str, shape: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Frame]:
    return st.builds(lambda body: Frame(kind, {**body, "type": kind}), shape)


def bad_frames() -> st.SearchStrategy[Frame]:
    """Frames either socket must refuse: not JSON, not an object, no string ``type``, an unknown type, too big."""
    return st.one_of(
        st.builds(lambda b: Frame("raw bytes", raw=b), st.binary(max_size=200)),
        st.builds(lambda t: Frame("not json", raw=t), st.one_of(st.text(max_size=50), st.just("{not json"))),
        st.builds(
            lambda v: Frame("not an object", v), st.one_of(scalars(), st.lists(json_values(4), max_size=3))
        ),
        st.builds(
            lambda body, kind: Frame("bad type", {**body, "type": kind}),
            st.dictionaries(st.text(max_size=8), json_values(4), max_size=3),
            st.one_of(st.none(), integers(), st.lists(st.just("prompt"), max_size=2), st.text(max_size=12)),
        ),
        st.builds(
            lambda body: Frame("no type", body),
            st.dictionaries(st.text(max_size=8), json_values(4), max_size=3).filter(
                lambda d: "type" not in d
            ),
        ),
        st.builds(lambda n: Frame("oversize", oversize=n), st.integers(1, 10_000)),
    )


def session_frames() -> st.SearchStrategy[Frame]:
    """Frames of the session socket: prompt, cancel, approve, plan controls, ping, and bad ones."""
    call_ids = st.one_of(st.text(max_size=12), st.sampled_from(["call_1", "", "\x00"]))
    plans = st.one_of(
        objects({"tasks": st.lists(plan_tasks(), max_size=4)}, {"goal": text()}),
        json_values(),
    )
    return st.one_of(
        _frame(
            "prompt",
            objects(
                {"text": text()},
                {
                    "context": st.one_of(objects({}, {"notebook": paths()}), json_values(4)),
                    "model": model_names(),
                    "plan": st.booleans(),
                    "auto": st.booleans(),
                },
            ),
        ),
        _frame("cancel", objects({})),
        _frame("approve", objects({"call_id": call_ids, "decision": st.sampled_from(DECISIONS)})),
        _frame("plan_approve", objects({})),
        _frame("plan_edit", objects({"plan": plans})),
        _frame(
            "task_control",
            objects(
                {"action": st.sampled_from(TASK_ACTIONS)},
                {"task_id": st.one_of(st.sampled_from([*PLAN_TASK_IDS, "zz"]), st.text(max_size=8))},
            ),
        ),
        _frame("ping", objects({}, {"id": json_values(4)})),
        bad_frames(),
    )


def browser_frames() -> st.SearchStrategy[Frame]:
    """Frames of the browser socket: input (every action), control, ping, and bad ones."""
    number = st.one_of(st.floats(), integers(), st.floats(-5_000, 5_000))
    urls = [
        "file:///etc/passwd",
        "http://127.0.0.1:1/",
        "http://169.254.169.254/latest/meta-data/",
        "javascript:alert(1)",
        "data:text/html,<b>x</b>",
        "about:blank",
        f"file://{OUTSIDE}/secret.txt",
    ]
    fields = {
        "x": number,
        "y": number,
        "dx": number,
        "dy": number,
        "text": text(),
        "key": st.one_of(st.sampled_from(["Enter", "Control+a", "F13", "Shift+"]), text()),
        "url": st.one_of(st.sampled_from(urls), text()),
    }
    inputs = _frame("input", objects({"action": st.sampled_from(INPUT_ACTIONS)}, fields))
    return weighted(
        (3, inputs),
        (1, _frame("control", objects({"take": st.booleans()}))),
        (1, _frame("ping", objects({}, {"id": json_values(4)}))),
        (2, bad_frames()),
    )


def _until_control(frames: list[Frame]) -> tuple[Frame, ...]:
    """Frames up to and including the first that takes control of the browser: input after that drives a
    real Chromium (a second or more per case), which only ``ws_cases(browser_input=True)`` asks for."""
    for i, frame in enumerate(frames):
        if frame.kind == "control" and frame.payload.get("take") is True:
            return tuple(frames[: i + 1])
    return tuple(frames)


def ws_cases(browser_input: bool = False) -> st.SearchStrategy[WsCase]:
    """Conversations on either socket. With ``browser_input`` half the browser conversations start by taking
    control, so their input frames are checked and performed in a real Chromium."""
    session = st.builds(
        lambda frames, planned: WsCase("session", tuple(frames), planned),
        st.lists(session_frames(), min_size=1, max_size=4),
        st.sampled_from([False, False, False, True]),  # shrinks towards no plan
    )
    if browser_input:
        take = Frame("control", {"type": "control", "take": True})
        browser = st.builds(
            lambda lead, frames: WsCase("browser", (take,) * lead + tuple(frames)),
            st.booleans(),
            st.lists(browser_frames(), min_size=1, max_size=4),
        )
    else:
        browser = st.builds(
            lambda frames: WsCase("browser", _until_control(frames)),
            st.lists(browser_frames(), min_size=1, max_size=4),
        )
    return weighted((2, session), (1, browser))


def connect_cases() -> st.SearchStrategy[ConnectCase]:
    afters = st.one_of(
        st.builds(str, integers()),
        st.sampled_from(["", "²", "١٢", "0x10", "1e3", " 1", "99999999999999999999999999"]),
        short_text(),
    )
    return st.builds(
        ConnectCase,
        st.sampled_from(["session", "browser"]),
        session_ids(),
        st.fixed_dictionaries({}, optional={"after": afters}),
    )


def cases(browser_input: bool = False) -> st.SearchStrategy[HttpCase | WsCase | ConnectCase]:
    """Everything the benchmark sends: requests, socket conversations and handshakes."""
    return weighted((9, http_cases()), (4, ws_cases(browser_input)), (1, connect_cases()))
