"""Summaries of the variables of a live Python namespace: what the model and the chat's ``@`` completion see.

This runs inside the kernel that holds the variables: in-process in the kernel runtime (``python_variables``,
``notebook_variables``), and in a notebook's own kernel, which may not have jupyter_agent installed, by
sending this module's source in a silent request (:func:`kernel_expression`). So it imports only the
standard library and recognises pandas, numpy and the like by their type's module and attributes, never by
importing them.

Work per object is bounded, because the namespace is the user's: no ``repr`` or ``str`` of arbitrary
objects (a ``__repr__`` may print a 10 GB table or sleep), only of scalars of known types and of a few
items; lengths, shapes, dtypes and byte sizes, which are O(1) or O(columns); three rows of a pandas or
polars table with narrow columns. A timer interrupts the look at one object after ``OBJECT_SECONDS`` (on the
main thread, where kernels run user code), and the whole listing stops describing after ``TOTAL_SECONDS``.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import enum
import fractions
import inspect
import json
import pathlib
import signal
import threading
import time
import types
import uuid
from collections.abc import Iterator
from typing import Any

MAX_VARIABLES = 100
MAX_COLUMNS = 30
HEAD_ROWS = 3
MAX_COLWIDTH = 30
MAX_HEAD_COLUMNS = 12
MAX_ITEMS = 5  # items of a list, keys of a dict shown
OBJECT_SECONDS = 0.5
TOTAL_SECONDS = 3.0
MAX_TEXT = 12_000  # characters of the model's text for a whole listing
#: Types whose repr is short and costs nothing: shown as they are.
SCALARS = (
    bool,
    int,
    float,
    complex,
    type(None),
    decimal.Decimal,
    fractions.Fraction,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    pathlib.PurePath,
    uuid.UUID,
    enum.Enum,
    range,
)
TABLE_LIBRARIES = ("pandas", "polars")


class Overtime(BaseException):
    """The look at one object ran past its time (a BaseException: a user's ``except Exception`` keeps it)."""


def list_variables(
    namespace: dict[str, Any], names: list[str] | None = None, hidden: Any = ()
) -> dict[str, Any]:
    """``{"variables": [summary, ...], "more": n, "missing": [names]}``: the user's variables (or ``names``).

    Without ``names``: public names not in ``hidden`` (IPython's own), leaving out modules and the functions
    and classes imported from elsewhere; at most ``MAX_VARIABLES``, ``more`` counting the rest.
    """
    if names:
        chosen = [n for n in dict.fromkeys(names) if n in namespace]
        missing = [n for n in dict.fromkeys(names) if n not in namespace]
    else:
        chosen = [
            name
            for name, value in list(namespace.items())
            if not name.startswith("_") and name not in hidden and not _imported(value)
        ]
        missing = []
    deadline = time.monotonic() + TOTAL_SECONDS
    summaries = []
    with _timer() as limit:
        for name in chosen[:MAX_VARIABLES]:
            value = namespace[name]
            if time.monotonic() > deadline:
                summaries.append(
                    {
                        **_basic(name, value),
                        "note": f"not described: the listing took over {TOTAL_SECONDS:g} s",
                    }
                )
                continue
            try:
                with limit(OBJECT_SECONDS):
                    summaries.append(summarize(name, value))
            except Overtime:
                summaries.append(
                    {
                        **_basic(name, value),
                        "note": f"not described: looking at it took over {OBJECT_SECONDS:g} s",
                    }
                )
    return {"variables": summaries, "more": max(len(chosen) - MAX_VARIABLES, 0), "missing": missing}


def summarize(name: str, value: Any) -> dict[str, Any]:
    """One variable: ``name``, ``type``, ``size`` (a short phrase) and, where they apply, ``shape``,
    ``dtype``, ``columns`` ([name, dtype] pairs), ``bytes``, ``preview`` (a value or a table's first rows)."""
    entry = _basic(name, value)
    try:
        entry.update(_describe(value))
    except Exception as err:  # a user object whose attributes fail
        entry["note"] = f"could not describe it: {type(err).__name__}: {_cut(str(err), 200)}"
    return entry


def _basic(name: str, value: Any) -> dict[str, Any]:
    return {"name": name, "type": _type_name(value)}


def _describe(value: Any) -> dict[str, Any]:
    cls = type(value)
    library = (cls.__module__ or "").split(".")[0]
    if _on_type(cls, "columns", "dtypes", "shape"):
        return _table(value, library in TABLE_LIBRARIES)
    if _on_type(cls, "shape", "dtype"):
        return _array(value, library in TABLE_LIBRARIES)
    if isinstance(value, SCALARS):
        if isinstance(value, int) and value.bit_length() > 256:
            return {"size": f"{value.bit_length()} bits"}
        return {"preview": _cut(repr(value), 200)}
    if isinstance(value, str):
        return {"size": f"{len(value)} chars", "preview": _brief(value, 200)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"size": f"{len(value)} bytes", "preview": _cut(repr(bytes(value[:60])), 100)}
    if isinstance(value, dict):
        keys = [_brief(k, 40) for k in _first(value, MAX_ITEMS)]
        more = ", ..." if len(value) > MAX_ITEMS else ""
        return {"size": f"{len(value)} keys", "preview": ", ".join(keys) + more}
    if isinstance(value, list | tuple | set | frozenset) or (
        _on_type(cls, "__len__", "__iter__") and cls.__module__ == "collections"
    ):
        items = [_brief(item, 40) for item in _first(value, MAX_ITEMS)]
        more = ", ..." if len(value) > MAX_ITEMS else ""
        return {"size": f"{len(value)} items", "preview": "[" + ", ".join(items) + more + "]"}
    if isinstance(value, type):
        return {"type": "class"}
    if inspect.isfunction(value) or inspect.isbuiltin(value):
        return {"type": "function", "preview": _signature(value)}
    return _other(value)


def _table(value: Any, known: bool) -> dict[str, Any]:
    """A DataFrame: shape, column dtypes, bytes, and (pandas, polars) three rows with narrow columns.

    Other libraries' tables (Dask, Spark) compute when their rows are asked for: only their schema is read.
    """
    shape = _shape(value)
    dtypes = value.dtypes
    if hasattr(dtypes, "items"):  # pandas: a Series of dtypes by column
        pairs = list(_first(dtypes.items(), MAX_COLUMNS))
    elif isinstance(dtypes, list) and dtypes and isinstance(dtypes[0], tuple):  # Spark: [(name, type)]
        pairs = dtypes[:MAX_COLUMNS]
    else:  # polars: columns and dtypes side by side
        pairs = list(zip(_first(value.columns, MAX_COLUMNS), _first(dtypes, MAX_COLUMNS), strict=False))
    entry: dict[str, Any] = {
        "shape": shape,
        "columns": [[_cut(str(c), 60), str(t)] for c, t in pairs],
    }
    if shape is not None and len(shape) == 2:
        entry["size"] = f"{shape[0]} rows × {shape[1]} columns"
    if known:
        entry["bytes"] = _table_bytes(value)
        entry["preview"] = _head(value)
    return {k: v for k, v in entry.items() if v is not None}


def _array(value: Any, known_table: bool) -> dict[str, Any]:
    """An array (numpy, torch, ...) or a pandas Series: shape, dtype, bytes, and small ones whole."""
    shape = _shape(value)
    entry: dict[str, Any] = {"shape": shape, "dtype": str(value.dtype)}
    if shape is not None:
        entry["size"] = " × ".join(str(n) for n in shape) if shape else "scalar"
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        entry["bytes"] = nbytes
    if known_table and hasattr(value, "head"):  # a pandas Series
        entry["bytes"] = _table_bytes(value)
        entry["preview"] = _head(value)
    elif isinstance(getattr(value, "size", None), int) and value.size <= 10:
        entry["preview"] = _cut(repr(value), 300)
    return {k: v for k, v in entry.items() if v is not None}


def _other(value: Any) -> dict[str, Any]:
    """Any other object: its length if it has one, and its attributes' names and types, never its repr."""
    entry: dict[str, Any] = {}
    if _on_type(type(value), "__len__"):
        with contextlib.suppress(Exception):
            entry["size"] = f"{len(value)} items"
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict) and attributes:
        public = [(k, v) for k, v in _first(attributes.items(), 40) if not str(k).startswith("_")]
        shown = ", ".join(f"{k}: {_type_name(v)}" for k, v in public[:8])
        if shown:
            entry["preview"] = "attributes " + shown + (", ..." if len(public) > 8 else "")
    return entry


def _head(value: Any) -> str | None:
    head = value.head(HEAD_ROWS)
    if hasattr(head, "to_string") and (value.__class__.__module__ or "").startswith("pandas"):
        try:
            text = head.to_string(max_colwidth=MAX_COLWIDTH, max_cols=MAX_HEAD_COLUMNS)
        except TypeError:  # a Series: no column options
            text = head.to_string(max_rows=HEAD_ROWS)
    else:
        text = str(head)  # polars: its own bounded table
    return _cut(text, 1500)


def _table_bytes(value: Any) -> int | None:
    try:
        if hasattr(value, "memory_usage"):  # pandas, shallow: object cells are not walked
            usage = value.memory_usage(index=True, deep=False)
            return int(usage.sum() if hasattr(usage, "sum") else usage)
        if hasattr(value, "estimated_size"):  # polars
            return int(value.estimated_size())
    except Exception:
        return None
    return None


def _shape(value: Any) -> list[int] | None:
    shape = getattr(value, "shape", None)
    try:
        return [int(n) for n in shape] if shape is not None else None
    except (TypeError, ValueError):  # lazy dimensions (Dask): not computed here
        return None


def _brief(value: Any, limit: int) -> str:
    """A short text of a small item: scalars and the start of strings as they are, else the type's name."""
    if isinstance(value, str):
        return _cut(repr(value[: limit + 1]), limit)
    if isinstance(value, SCALARS):
        return _cut(repr(value), limit) if not isinstance(value, int) or value.bit_length() < 256 else "<int>"
    if isinstance(value, tuple) and len(value) <= 3:
        return "(" + ", ".join(_brief(v, limit // 3) for v in value) + ")"
    return f"<{_type_name(value)}>"


def _first(items: Any, count: int) -> list[Any]:
    out = []
    for item in items:
        if len(out) >= count:
            break
        out.append(item)
    return out


def _signature(fn: Any) -> str:
    try:
        return f"{fn.__name__}{inspect.signature(fn)}"
    except (TypeError, ValueError):
        return f"{fn.__name__}(...)"


def _type_name(value: Any) -> str:
    cls = type(value)
    module = cls.__module__ or ""
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module.split('.')[0]}.{cls.__qualname__}"


def _on_type(cls: type, *attributes: str) -> bool:
    """Whether the class defines these (looked up on the class: an instance's properties could compute)."""
    return all(hasattr(cls, a) for a in attributes)


def _imported(value: Any) -> bool:
    """Modules, and functions or classes defined elsewhere: imports, not the user's data."""
    if isinstance(value, types.ModuleType):
        return True
    if isinstance(value, type) or inspect.isfunction(value) or inspect.isbuiltin(value):
        return getattr(value, "__module__", None) != "__main__"
    return False


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def _timer() -> Iterator[Any]:
    """Yields ``limit(seconds)``, a context that raises :class:`Overtime` in the code it wraps after
    ``seconds``. A real-time timer (SIGALRM), so only on the main thread of a Unix process, and only if no
    timer of the user's is set; elsewhere ``limit`` does nothing and the total time bounds the listing."""
    usable = (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0
    )
    if not usable:
        yield lambda _seconds: contextlib.nullcontext()
        return

    def overtime(_signum: int, _frame: Any) -> None:
        raise Overtime

    @contextlib.contextmanager
    def limit(seconds: float) -> Iterator[None]:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    previous = signal.signal(signal.SIGALRM, overtime)
    try:
        yield limit
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- text for the model -------------------------------------------------------------------------------


def describe(summary: dict[str, Any]) -> str:
    """One variable as the model reads it: ``name: type, size; details`` and a table's first rows."""
    head = f"{summary['name']}: {summary['type']}"
    if summary.get("size"):
        head += f", {summary['size']}"
    if summary.get("dtype"):
        head += f", dtype {summary['dtype']}"
    if summary.get("bytes"):
        head += f", {_bytes(summary['bytes'])}"
    if summary.get("columns"):
        head += "; columns: " + ", ".join(f"{c} ({t})" for c, t in summary["columns"])
    preview = summary.get("preview")
    if preview and "\n" in preview:
        head += "\n  first rows:\n" + "\n".join("    " + line for line in preview.splitlines())
    elif preview:
        head += f": {preview}"
    if summary.get("note"):
        head += f" ({summary['note']})"
    return head


def describe_listing(listing: dict[str, Any]) -> str:
    """A whole listing as the model reads it."""
    lines = [describe(s) for s in listing.get("variables", [])]
    lines += [f"{name}: not defined" for name in listing.get("missing", [])]
    if not lines:
        return "No user variables are defined yet."
    if listing.get("more"):
        lines.append(f"[... {listing['more']} more variables not shown; ask for them by name]")
    text = "\n".join(lines)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "\n[... cut ...]"


def _bytes(count: int) -> str:
    size = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} bytes"


# -- in a notebook's kernel -----------------------------------------------------------------------------


def kernel_report(names: list[str] | None) -> str:
    """The listing of the running IPython shell's user namespace, as JSON (what a kernel sends back)."""
    from IPython import get_ipython

    shell = get_ipython()
    return json.dumps(list_variables(shell.user_ns, names, shell.user_ns_hidden), default=str)


def kernel_expression(names: list[str] | None) -> str:
    """A ``user_expressions`` entry that lists the kernel's variables without touching its namespace: this
    module is compiled into a fresh dict, and its :func:`kernel_report` is the expression's value."""
    source = pathlib.Path(__file__).read_text(encoding="utf-8")
    return (
        "(lambda ns: (exec(compile(" + repr(source) + ", '<jupyter_agent variables>', 'exec'), ns), "
        "ns['kernel_report']("
        + repr(list(names) if names else None)
        + "))[1])({'__name__': '_jupyter_agent_variables'})"
    )
