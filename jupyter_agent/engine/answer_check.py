"""Checks a final answer against the answer template its request gave, before the turn ends on it.

A request may say how its answer must be written with named fields, ``@name[value]`` (e.g. "answer as
@mean_fare[mean_fare_value]"): a program reads the fields out of the answer. Models, small ones most, often
answer in prose, leave a field out or copy the template's placeholder instead of a value. The agent loop
sends such an answer back (once or twice) with what is missing, so the model computes or fills it in.
"""

from __future__ import annotations

import re

FIELD = re.compile(r"(?<![\w)\]])@(\w+)\[([^\]]*)\]")  # not "a@b[0]" (matrix product), nor e-mails

MISSING_FIELDS = (
    "Your answer does not fill in {fields}, which the request asks for in the form @name[value] with the "
    "value itself. If you do not have a value yet, compute it with code first; then give the final answer "
    "again with every field filled in: {template}."
)


def template_fields(request: str) -> dict[str, str]:
    """The fields a request's answer template names, with their placeholders, in order."""
    return {name: placeholder.strip() for name, placeholder in FIELD.findall(request or "")}


def missing_fields(request: str, answer: str) -> list[str]:
    """The template's fields the answer leaves out, leaves empty, or gives its placeholder for."""
    given = {name: value.strip() for name, value in FIELD.findall(answer or "")}
    return [
        name
        for name, placeholder in template_fields(request).items()
        if not given.get(name) or (placeholder and given[name] == placeholder)
    ]


def answer_note(request: str, answer: str) -> str:
    """What to tell the model about an answer that misses fields of the request's template ('' if none)."""
    missing = missing_fields(request, answer)
    if not missing:
        return ""
    fields = ", ".join(f"@{name}[...]" for name in missing)
    template = " ".join(f"@{name}[...]" for name in template_fields(request))
    return MISSING_FIELDS.format(fields=fields, template=template)
