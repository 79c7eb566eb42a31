"""One redaction step for everything that leaves the process: events, the audit log, logs, model requests.

Secrets are found by detect-secrets' detectors (AWS, GitHub, Slack, Stripe, private keys, JWTs, ``password =
"..."`` assignments, ...), by the few patterns it lacks (OpenAI-style ``sk-`` keys, bearer tokens, whole PEM
private keys), by key (a value under ``api_key``, ``password``, ``Authorization``, ...) and by value: the
configured API keys and this process's secret-looking environment variables (``*_API_KEY``, ``*_TOKEN``,
``*_SECRET``, ...). With ``pii`` on, e-mail addresses, phone numbers, card numbers (Luhn-checked) and IBANs
(mod-97-checked) too.

What is found becomes a placeholder such as ``[SECRET_3f9a2c1b]``. The same value always gets the same
placeholder in this process (a keyed hash: the placeholder tells nothing about the value), so a conversation
stays readable. A session's :class:`Vault` remembers what its placeholders stand for, in memory only, so a
tool call the model makes with a placeholder gets the real value back (:meth:`Redactor.restore_json`): a
command that needs a token works, and the model never sees the token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.filters import heuristic
from detect_secrets.plugins import keyword
from detect_secrets.plugins.base import RegexBasedDetector

MASK = "***"

#: A value under a key with one of these names (after camelCase -> snake_case) is a secret, whatever it is.
SECRET_KEY = re.compile(
    r"(?:^|_)(?:api_?key|access_?key|auth_?key|secret(?:_?key)?|client_?secret|token|password|passwd|"
    r"passphrase|authorization|credentials?|private_?key)$"
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

#: detect-secrets' detectors left out: a public IP address is no secret, and the IBM Cloud, Cloudant and
#: SoftLayer ones try a keyword pattern at every character (half the time of a scan, for niche services whose
#: ``..._password = "..."`` assignments the keyword detector finds anyway).
SKIPPED_DETECTORS = frozenset(
    {
        "Public IP (ipv4)",
        "IBM Cloud IAM Key",
        "IBM COS HMAC Credentials",
        "Cloudant Credentials",
        "SoftLayer Credentials",
    }
)

#: Patterns detect-secrets lacks: OpenAI-style keys in every format (its detector knows the legacy one only),
#: bearer tokens, and whole PEM private keys (its detector finds the BEGIN line only).
EXTRA_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "private_key",
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY(?: BLOCK)?-----.*?-----END [A-Z ]*PRIVATE KEY(?: BLOCK)?-----",
            re.S,
        ),
    ),
    ("api_key", re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}")),
    ("bearer_token", re.compile(r"\bBearer\s+[A-Za-z0-9._~+/\-]{8,}=*")),
)

#: Keyword assignments (``password = "..."``, ``api_key: ...``) in code and in config files, checked line by line.
KEYWORD_HINTS = ("key", "pass", "pwd", "secret", "contrase")  # one is in each of detect-secrets' keywords
KEYWORD_PATTERNS = (
    *((pattern, group, False) for pattern, group in keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP.items()),
    *((pattern, group, True) for pattern, group in keyword.CONFIG_DENYLIST_REGEX_TO_GROUP.items()),
)
NOT_SECRETS = frozenset(
    {"none", "null", "nil", "true", "false", "undefined", "changeme", "required", "optional"}
)

#: Personal data, found only with ``pii`` on.
EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,4}){1,4}"  # +44 20 7946 0958
    r"|\(\d{3}\)\s?\d{3}[\s.-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w])"  # (212) 555-0123, 212-555-0123
)
CARD = re.compile(  # as cards print them: 4-4-4-4 (and 4-4-4-4-3), Amex 4-6-5, or the digits alone
    r"(?<![\w-])(?:[2-6]\d{3}(?:[ -]\d{4}){3}(?:[ -]\d{3})?|3[47]\d{2}[ -]\d{6}[ -]\d{5}|[2-6]\d{12,18})(?![\w-])"
)
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")

PII_KINDS = {"email": "EMAIL", "phone": "PHONE", "card": "CARD", "iban": "IBAN"}
PLACEHOLDER = re.compile(r"\[(?:SECRET|EMAIL|PHONE|CARD|IBAN)_[0-9a-f]{8}\]")
SENT_CACHE_MIN, SENT_CACHE_SIZE = 1000, 256  # characters, entries
MIN_KNOWN = 8  # characters: shorter configured values ("none", "true") would be masked in every word
MIN_REMEMBERED = 6  # characters of a value a session has hidden, looked for again in its later events

#: Top-level event fields that are the event's own bookkeeping, never content.
EVENT_FIELDS = frozenset({"type", "session", "seq", "ts", "turn", "task", "attempt", "call_id"})
#: Keys whose values are binary (images): nothing to find in them, and they are large.
BINARY_KEYS = frozenset({"images", "image_url"})

_KEY = secrets.token_bytes(32)  # this process's placeholder key: placeholders mean nothing elsewhere


def _detectors() -> list[tuple[str, RegexBasedDetector]]:
    found = []
    for name, cls in sorted(get_mapping_from_secret_type_to_class().items()):
        if name in SKIPPED_DETECTORS or not issubclass(cls, RegexBasedDetector):
            continue
        found.append((re.sub(r"\W+", "_", name.lower()).strip("_"), cls()))
    return found


DETECTORS = _detectors()
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-.+/=]*")
_DELIMITERS = frozenset(" \t\r\n\"'=:")


@dataclass(frozen=True)
class Finding:
    """Something to hide: ``text[start:end]``, of ``kind`` (``aws_access_key``, ``email``, ...)."""

    start: int
    end: int
    kind: str


class Vault:
    """What a session's placeholders stand for, so tool arguments can have the real values back.

    In memory only, never stored: after a restart the placeholders in old events stay placeholders.
    """

    def __init__(self) -> None:
        self._values: dict[str, str] = {}  # placeholder -> value
        self._kinds: dict[str, str] = {}  # value -> kind
        self._pattern: re.Pattern[str] | None = None
        self._pattern_size = 0

    def add(self, placeholder: str, value: str, kind: str) -> None:
        if placeholder not in self._values:
            self._values[placeholder] = value
            self._kinds[value] = kind

    def __len__(self) -> int:
        return len(self._values)

    def value(self, placeholder: str) -> str | None:
        return self._values.get(placeholder)

    def kind(self, value: str) -> str:
        return self._kinds.get(value, "secret")

    def known(self) -> re.Pattern[str] | None:
        """A pattern matching every remembered value long enough to look for in any text."""
        if self._pattern_size != len(self._values):
            values = sorted(
                {v for v in self._values.values() if len(v) >= MIN_REMEMBERED}, key=len, reverse=True
            )
            self._pattern = re.compile("|".join(map(re.escape, values))) if values else None
            self._pattern_size = len(self._values)
        return self._pattern


class Redactor:
    """Finds secrets (and, with ``pii``, personal data) and replaces them with placeholders.

    ``known`` are values to hide wherever they appear (the configured API keys, secret environment variables).
    """

    def __init__(self, *, pii: bool = False, known: Iterable[str] = ()) -> None:
        self.pii = pii
        values = sorted(
            {v for v in known if isinstance(v, str) and len(v) >= MIN_KNOWN}, key=len, reverse=True
        )
        self._known = re.compile("|".join(map(re.escape, values))) if values else None
        self._vaults: dict[str, Vault] = {}
        # Long texts a conversation sends the model again at every step: (vault, its size, text) -> redacted.
        self._sent: OrderedDict[tuple[Vault, int, str], str] = OrderedDict()

    @classmethod
    def for_settings(cls, settings: Any, environ: Mapping[str, str] | None = None, *extra: str) -> Redactor:
        """The redactor for ``settings`` (a ``JupyterAgent``): its ``redact_pii``, and as known secrets the
        secret values in its ``model_options`` and in ``environ`` (default: this process's environment)."""
        known = [*secret_values(dict(getattr(settings, "model_options", {}) or {})), *extra]
        env = os.environ if environ is None else environ
        known += [value for name, value in env.items() if is_secret_key(name)]
        return cls(pii=bool(getattr(settings, "redact_pii", False)), known=known)

    def vault(self, key: str) -> Vault:
        """The vault of one conversation (a session id)."""
        vault = self._vaults.get(key)
        if vault is None:
            vault = self._vaults[key] = Vault()
        return vault

    # -- finding ------------------------------------------------------------------------------------------
    def find(self, text: str, vault: Vault | None = None) -> list[Finding]:
        """What to hide in ``text``: non-overlapping, in order; placeholders already there are left alone."""
        if len(text) < 6:
            return []
        found: list[Finding] = []
        if self._known is not None:
            found += [Finding(m.start(), m.end(), "configured_secret") for m in self._known.finditer(text)]
        if vault is not None and (remembered := vault.known()) is not None:
            found += [Finding(m.start(), m.end(), vault.kind(m.group())) for m in remembered.finditer(text)]
        for kind, detector in DETECTORS:
            for pattern in detector.denylist:
                for match in pattern.finditer(text):
                    found.append(Finding(*_secret_span(text, match), kind))
        for kind, pattern in EXTRA_PATTERNS:
            found += [Finding(m.start(), m.end(), kind) for m in pattern.finditer(text)]
        if _hints_keyword(text):
            found += _keyword_findings(text)
        if self.pii:
            found += _pii_findings(text)
        return _resolve(found, [m.span() for m in PLACEHOLDER.finditer(text)])

    # -- replacing ----------------------------------------------------------------------------------------
    def placeholder(self, kind: str, value: str) -> str:
        """The placeholder of ``value`` in this process: ``[SECRET_xxxxxxxx]`` (``[EMAIL_...]`` for PII)."""
        digest = hmac.new(_KEY, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:8]
        return f"[{PII_KINDS.get(kind, 'SECRET')}_{digest}]"

    def redact_text(
        self,
        text: str,
        vault: Vault | None = None,
        seen: dict[str, str] | None = None,
        mask: str | None = None,
    ) -> str:
        """``text`` with what :meth:`find` finds replaced: by placeholders (remembered in ``vault``; each new
        one noted in ``seen``, placeholder -> kind), or by ``mask`` when given."""
        findings = self.find(text, vault)
        if not findings:
            return text
        parts, last = [], 0
        for finding in findings:
            value = text[finding.start : finding.end]
            parts += [text[last : finding.start], self._substitute(finding.kind, value, vault, seen, mask)]
            last = finding.end
        parts.append(text[last:])
        return "".join(parts)

    def redact(
        self,
        value: Any,
        vault: Vault | None = None,
        seen: dict[str, str] | None = None,
        mask: str | None = None,
        skip: frozenset[str] = frozenset(),
    ) -> Any:
        """A copy of ``value`` (JSON-like) with secrets replaced at any depth; values under secret-named keys
        are replaced whole. Top-level keys in ``skip`` are copied as they are."""
        if isinstance(value, str):
            return self.redact_text(value, vault, seen, mask)
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if key in skip or key in BINARY_KEYS:
                    out[key] = item
                elif isinstance(key, str) and is_secret_key(key) and _is_value(item):
                    text = item if isinstance(item, str) else json.dumps(item, default=str)
                    out[key] = (
                        text
                        if PLACEHOLDER.fullmatch(text)
                        else self._substitute("secret", text, vault, seen, mask)
                    )
                else:
                    out[key] = self.redact(item, vault, seen, mask)
            return out
        if isinstance(value, list | tuple):
            return [self.redact(item, vault, seen, mask) for item in value]
        return value

    def _substitute(
        self, kind: str, value: str, vault: Vault | None, seen: dict[str, str] | None, mask: str | None
    ) -> str:
        if mask is not None:
            return mask
        placeholder = self.placeholder(kind, value)
        if vault is not None:
            vault.add(placeholder, value, kind)
        if seen is not None:
            seen.setdefault(placeholder, kind)
        return placeholder

    # -- the way back ------------------------------------------------------------------------------------
    def restore(self, text: str, vault: Vault) -> str:
        """``text`` with the placeholders ``vault`` knows replaced by their values."""
        return PLACEHOLDER.sub(lambda m: vault.value(m.group()) or m.group(), text)

    def restore_json(self, text: str, vault: Vault) -> str:
        """Like :meth:`restore`, for JSON text: each value is escaped as inside a JSON string."""
        return PLACEHOLDER.sub(
            lambda m: json.dumps(value)[1:-1] if (value := vault.value(m.group())) is not None else m.group(),
            text,
        )

    # -- model requests ----------------------------------------------------------------------------------
    def redact_messages(self, messages: list[dict[str, Any]], vault: Vault) -> list[dict[str, Any]]:
        """The chat messages as the provider may see them (images are sent as they are)."""
        out = []
        for message in messages:
            copy = dict(message)
            content = message.get("content")
            if isinstance(content, str):
                copy["content"] = self._redact_sent(content, vault)
            elif isinstance(content, list):
                copy["content"] = [
                    {**part, "text": self._redact_sent(part["text"], vault)}
                    if isinstance(part, dict) and isinstance(part.get("text"), str)
                    else part
                    for part in content
                ]
            if message.get("tool_calls"):
                copy["tool_calls"] = [_redact_call(self, call, vault) for call in message["tool_calls"]]
            out.append(copy)
        return out

    def _redact_sent(self, text: str, vault: Vault) -> str:
        if len(text) < SENT_CACHE_MIN:
            return self.redact_text(text, vault)
        key = (vault, len(vault), text)
        redacted = self._sent.get(key)
        if redacted is None:
            redacted = self._sent[key] = self.redact_text(text, vault)
            if len(self._sent) > SENT_CACHE_SIZE:
                self._sent.popitem(last=False)
        else:
            self._sent.move_to_end(key)
        return redacted


def _redact_call(redactor: Redactor, call: Any, vault: Vault) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    return {**call, "function": {**function, "arguments": redactor.redact_text(function["arguments"], vault)}}


def is_secret_key(name: str) -> bool:
    """Whether a field or variable called ``name`` holds a secret (``api_key``, ``GITHUB_TOKEN``, ``apiKey``)."""
    return bool(SECRET_KEY.search(_CAMEL.sub("_", name).lower().replace("-", "_")))


def secret_values(value: Any) -> list[str]:
    """The strings under secret-named keys anywhere in ``value`` (e.g. ``model_options``)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and is_secret_key(key) and isinstance(item, str):
                found.append(item)
            else:
                found += secret_values(item)
    elif isinstance(value, list | tuple):
        for item in value:
            found += secret_values(item)
    return found


def _is_value(item: Any) -> bool:
    return (
        bool(item)
        and not isinstance(item, bool)
        and (isinstance(item, str) or not isinstance(item, dict | list))
    )


def _secret_span(text: str, match: re.Match[str]) -> tuple[int, int]:
    """Where the secret is in a detector's match.

    Its last group when that is inside the match (``aws_secret = "X"``), else the whole match (a group at the
    start is only a prefix, as in ``(ghp|gho)_...``) without the delimiters some detectors include, carried on
    to the end of the token (some detectors match a prefix of it, as the JWT one does).
    """
    for index in range(len(match.groups()), 0, -1):
        if match.group(index) and match.start(index) > match.start():
            return match.span(index)
    start, end = match.span()
    while start < end and text[start] in _DELIMITERS:
        start += 1
    while end > start and text[end - 1] in _DELIMITERS:
        end -= 1
    end = _TOKEN_CHARS.match(text, end).end()  # type: ignore[union-attr]
    while end > start and text[end - 1] == ".":  # a full stop after the token ends the sentence
        end -= 1
    return start, end


def _keyword_findings(text: str) -> list[Finding]:
    found = []
    offset = 0
    for line in text.splitlines(keepends=True):
        if _hints_keyword(line):
            indirect = heuristic.is_indirect_reference(line)  # password = getpass(): no secret here
            for pattern, group, unquoted in KEYWORD_PATTERNS:
                if unquoted and indirect:
                    continue
                for match in pattern.finditer(line):
                    value = match.group(group)
                    if value and _plausible(value, unquoted):
                        start, end = offset + match.start(group), offset + match.end(group)
                        found.append(Finding(start, end, "secret_keyword"))
        offset += len(line)
    return found


def _hints_keyword(text: str) -> bool:
    lower = text.lower()
    return any(hint in lower for hint in KEYWORD_HINTS)


def _plausible(value: str, unquoted: bool) -> bool:
    """Whether a keyword assignment's value may be a secret (not ``None``, ``getpass()``, ``${VAR}``, ...)."""
    if value.lower() in NOT_SECRETS or PLACEHOLDER.search(value) or value.startswith("$"):
        return False
    if unquoted and (len(value) < 6 or any(c.isspace() for c in value)):
        return False  # "password: must contain 8 characters" is prose
    return not (
        heuristic.is_templated_secret(value)
        or heuristic.is_sequential_string(value)
        or heuristic.is_potential_uuid(value)
        or heuristic.is_not_alphanumeric_string(value)
    )


def _pii_findings(text: str) -> list[Finding]:
    found = [Finding(m.start(), m.end(), "email") for m in EMAIL.finditer(text)]
    for match in PHONE.finditer(text):
        if 8 <= sum(c.isdigit() for c in match.group()) <= 15:
            found.append(Finding(match.start(), match.end(), "phone"))
    found += [Finding(m.start(), m.end(), "card") for m in CARD.finditer(text) if luhn_valid(m.group())]
    for match in IBAN.finditer(text):
        # The pattern may take in a word that follows ("... 3000 USD"): trailing groups without digits go.
        candidate = match.group()
        while " " in candidate and not any(c.isdigit() for c in candidate[candidate.rfind(" ") :]):
            candidate = candidate[: candidate.rfind(" ")]
        if iban_valid(candidate):
            found.append(Finding(match.start(), match.start() + len(candidate), "iban"))
    return found


def luhn_valid(number: str) -> bool:
    """Whether ``number`` (digits, spaces and dashes) passes the Luhn check of payment card numbers."""
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """Whether ``iban`` passes the ISO 13616 mod-97 check."""
    compact = iban.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    try:
        return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1
    except ValueError:
        return False


def _resolve(found: list[Finding], placeholders: list[tuple[int, int]]) -> list[Finding]:
    """The findings to replace: the earliest (then the longest) of overlapping ones, none inside a placeholder."""
    chosen: list[Finding] = []
    end = 0
    for finding in sorted(found, key=lambda f: (f.start, -f.end)):
        if finding.start < end or finding.end <= finding.start:
            continue
        if any(finding.start < p_end and p_start < finding.end for p_start, p_end in placeholders):
            continue
        chosen.append(finding)
        end = finding.end
    return chosen


# -- plain masking (no placeholders) --------------------------------------------------------------------------

_plain = Redactor()


def redact_text(text: str) -> str:
    """Mask things that look like API keys or tokens inside free text with ``***``."""
    return _plain.redact_text(text, mask=MASK)


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret-named keys and secret-looking strings masked with ``***``."""
    return _plain.redact(value, mask=MASK)


# -- logs ---------------------------------------------------------------------------------------------------


class LogRedaction(logging.Filter):
    """Redacts a log record's message and traceback in place (placeholders, as in events)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it when the record is handled
            return True
        record.msg, record.args = self.redactor.redact_text(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redactor.redact_text(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = self.redactor.redact_text(record.stack_info)
        return True


LOGGER = "jupyter_agent"
_log_filter: LogRedaction | None = None


#: Loggers whose records are redacted (by their first dotted part, or whole name): ours, and the server's.
_redacted_loggers: set[str] = {LOGGER}


def redact_logs(redactor: Redactor, also: tuple[str, ...] = ()) -> None:
    """Pass every record of the ``jupyter_agent`` loggers (and of the loggers named in ``also``, with their
    children) through ``redactor`` (the latest call's wins).

    Filters on a logger do not apply to its children's records, so the filter runs where records are made
    (the log record factory), for those loggers only: loggers created later are covered too.
    """
    global _log_filter
    _redacted_loggers.update(also)
    if _log_filter is not None:
        _log_filter.redactor = redactor
        return
    _log_filter = active = LogRedaction(redactor)
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        root = record.name.split(".", 1)[0]
        if root in _redacted_loggers or record.name in _redacted_loggers:
            active.filter(record)
        return record

    logging.setLogRecordFactory(factory)
