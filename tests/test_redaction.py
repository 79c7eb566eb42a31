"""The redaction step on its own: what it finds, the placeholders it leaves, the way back, and the logs.

What it does to a whole conversation (events, audit log, logs, model requests) is tested through the real
server in tests/test_security.py.
"""

from __future__ import annotations

import json
import logging

import pytest

from jupyter_agent.security.redaction import (
    PLACEHOLDER,
    Redactor,
    iban_valid,
    luhn_valid,
    redact_logs,
)

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
OPENAI_KEY = "sk-proj-Zt4q9LmXw2Rk7Vb1Nc8Hd3Fg6Js5Pa0Ye"
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7c3\nq9Zx+/w==\n-----END RSA PRIVATE KEY-----"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)


@pytest.mark.parametrize(
    ("text", "secret", "kind"),
    [
        (f"export AWS_ACCESS_KEY_ID={AWS_KEY}", AWS_KEY, "aws_access_key"),
        (f"git clone https://{GITHUB_TOKEN}@github.com/x/y", GITHUB_TOKEN, "github_token"),
        (f"client = OpenAI(api_key={OPENAI_KEY!r})", OPENAI_KEY, "api_key"),
        (f"token: {JWT}.", JWT, "json_web_token"),
        (f"key file:\n{PRIVATE_KEY}\nend", PRIVATE_KEY, "private_key"),
        ('db_password = "correct-horse-battery"', "correct-horse-battery", "secret_keyword"),
        ("DB_PASSWORD=Tr0ub4dor&3x", "Tr0ub4dor&3x", "secret_keyword"),
        ("postgres://app:s3cr3tPassw0rd@db:5432/main", "s3cr3tPassw0rd", "basic_auth_credentials"),
        ("curl -H 'Authorization: Bearer abcDEF123456ghiJKL'", "Bearer abcDEF123456ghiJKL", "bearer_token"),
    ],
)
def test_should_replace_a_secret_with_a_placeholder_of_its_kind(text, secret, kind):
    redactor = Redactor()
    vault = redactor.vault("s")
    seen: dict[str, str] = {}

    redacted = redactor.redact_text(text, vault, seen)

    assert secret not in redacted
    placeholder = redactor.placeholder(kind, secret)
    assert placeholder in redacted and PLACEHOLDER.fullmatch(placeholder)
    assert seen == {placeholder: kind}
    assert redactor.restore(redacted, vault) == text


@pytest.mark.parametrize(
    "text",
    [
        "Prompt tokens: 1,870; completion_tokens = 12",
        "password = getpass()",
        "The password: must contain 8 characters",
        "api_key=None",
        'secret = "${SECRET_FROM_ENV}"',
        "cell 3f9a2c1b-aaaa-4bbb-8ccc-123456789abc ran; sha 0123456789abcdef0123456789abcdef01234567",
        "Served on 8.8.8.8 at 2024-01-15 12:30:45, ts 1712345678901",
        "bob@example.org called +44 20 7946 0958",  # personal data is hidden only with pii on
    ],
)
def test_should_leave_ordinary_text_alone(text):
    redactor = Redactor()

    assert redactor.redact_text(text, redactor.vault("s")) == text


def test_should_give_one_value_the_same_placeholder_everywhere_and_redact_only_once():
    redactor = Redactor()
    vault = redactor.vault("s")

    first = redactor.redact_text(f"id {AWS_KEY}", vault)
    second = redactor.redact({"cmd": f"echo {AWS_KEY}", "note": f"again {AWS_KEY}"}, vault)

    placeholder = redactor.placeholder("aws_access_key", AWS_KEY)
    assert first == f"id {placeholder}"
    assert second == {"cmd": f"echo {placeholder}", "note": f"again {placeholder}"}
    assert redactor.redact_text(first, vault) == first, "a placeholder is never redacted again"


def test_should_replace_values_under_secret_named_keys_and_then_everywhere_in_the_session():
    redactor = Redactor()
    vault = redactor.vault("s")
    secret = "plain-words-but-secret"

    arguments = redactor.redact(
        {"apiKey": secret, "prompt_tokens": 12, "maxTokens": 5, "nested": [{"password": secret}]}, vault
    )
    later = redactor.redact_text(f"the tool printed {secret}", vault)
    elsewhere = redactor.redact_text(f"the tool printed {secret}", redactor.vault("another session"))

    placeholder = redactor.placeholder("secret", secret)
    assert arguments == {
        "apiKey": placeholder,
        "prompt_tokens": 12,
        "maxTokens": 5,
        "nested": [{"password": placeholder}],
    }
    assert later == f"the tool printed {placeholder}"
    assert elsewhere == f"the tool printed {secret}", "a value found by its key is known in its session only"


def test_should_hide_configured_keys_and_secret_environment_variables_wherever_they_appear():
    class Settings:
        model_options = {"api_key": "my-configured-key-42", "headers": {"X-Api-Key": "header-key-4242"}}
        redact_pii = False

    environ = {"HF_TOKEN": "hf-token-value-777", "HOME": "/home/ada", "SHORT_TOKEN": "abc"}
    redactor = Redactor.for_settings(Settings(), environ)

    text = "my-configured-key-42 header-key-4242 hf-token-value-777 /home/ada abc"
    redacted = redactor.redact_text(text)

    assert redacted.split()[3:] == ["/home/ada", "abc"]
    assert all(PLACEHOLDER.fullmatch(word) for word in redacted.split()[:3])


def test_should_restore_placeholders_the_session_knows_in_tool_arguments_as_json():
    redactor = Redactor()
    vault = redactor.vault("s")
    redactor.redact_text(f"-----\n{PRIVATE_KEY}", vault)
    known = redactor.placeholder("private_key", PRIVATE_KEY)
    unknown = "[SECRET_0badc0de]"

    arguments = json.dumps({"path": "id_rsa", "content": f"{known}\n{unknown}"})
    restored = json.loads(redactor.restore_json(arguments, vault))

    assert restored == {"path": "id_rsa", "content": f"{PRIVATE_KEY}\n{unknown}"}
    assert json.loads(redactor.restore_json(arguments, redactor.vault("other")))["content"].startswith(known)


def test_should_hide_the_secrets_in_messages_sent_to_the_model_but_not_their_images():
    redactor = Redactor()
    vault = redactor.vault("s")
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUtJQUlPU0ZPRE5ON0VYQU1QTEU="}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": f"use {AWS_KEY}"}, image]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "x", "arguments": json.dumps({"k": AWS_KEY})},
                }
            ],
        },
    ]

    sent = redactor.redact_messages(messages, vault)

    assert AWS_KEY not in json.dumps(sent)
    assert sent[0]["content"][1] == image
    assert AWS_KEY in json.dumps(messages), "the caller's messages are left as they were"


@pytest.mark.parametrize(
    ("text", "value", "kind"),
    [
        ("mail ada.lovelace@example.co.uk today", "ada.lovelace@example.co.uk", "email"),
        ("call +44 20 7946 0958 now", "+44 20 7946 0958", "phone"),
        ("or (212) 555-0123.", "(212) 555-0123", "phone"),
        ("card 4111 1111 1111 1111 exp 12/29", "4111 1111 1111 1111", "card"),
        ("pay to DE89 3704 0044 0532 0130 00 USD", "DE89 3704 0044 0532 0130 00", "iban"),
        ("IBAN GB82WEST12345698765432.", "GB82WEST12345698765432", "iban"),
    ],
)
def test_should_hide_personal_data_only_when_asked_to(text, value, kind):
    with_pii, without = Redactor(pii=True), Redactor()
    seen: dict[str, str] = {}

    redacted = with_pii.redact_text(text, with_pii.vault("s"), seen)

    assert value not in redacted and list(seen.values()) == [kind]
    assert next(iter(seen)).startswith(f"[{kind.upper()}_")
    assert without.redact_text(text, without.vault("s")) == text


def test_should_keep_numbers_that_fail_the_card_and_iban_checks():
    redactor = Redactor(pii=True)
    text = "order 4111 1111 1111 1112, account DE89 3704 0044 0532 0130 01, on 2024-01-15"

    assert redactor.redact_text(text) == text
    assert luhn_valid("4111-1111-1111-1111") and not luhn_valid("4111-1111-1111-1112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB82 WEST 1234 5698 7654 33")


def test_should_hide_secrets_in_log_messages_and_tracebacks_of_the_agent_loggers(caplog):
    redactor = Redactor()
    redact_logs(redactor)
    logger = logging.getLogger("jupyter_agent.tests.redaction")

    with caplog.at_level(logging.INFO, logger="jupyter_agent"):
        logger.info("connecting with %s", AWS_KEY)
        try:
            raise RuntimeError(f"refused key {GITHUB_TOKEN}")
        except RuntimeError:
            logger.exception("the call failed")

    assert "connecting with [SECRET_" in caplog.text and "Traceback" in caplog.text
    assert AWS_KEY not in caplog.text and GITHUB_TOKEN not in caplog.text


def test_should_hide_secrets_in_the_jupyter_servers_own_log_records_too(caplog):
    redact_logs(Redactor(), also=("ServerApp", "tornado.application"))
    with caplog.at_level(logging.INFO):
        logging.getLogger("ServerApp").warning("a request failed with %s", AWS_KEY)
        logging.getLogger("tornado.application").error("Uncaught exception: key %s", GITHUB_TOKEN)
        logging.getLogger("someone.else").info("untouched %s", "plain text")

    assert AWS_KEY not in caplog.text and GITHUB_TOKEN not in caplog.text
    assert "a request failed with [SECRET_" in caplog.text and "untouched plain text" in caplog.text
