"""wtb_domain.redaction: what counts as a secret, deep redaction, masked database URLs."""

from __future__ import annotations

import copy

import pytest

from wtb_domain.redaction import looks_secret, mask_text, mask_url, redact, redact_text


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "OPENAI_API_KEY",
        "DB_PASSWORD",
        "passwd",
        "auth",
        "Authorization",
        "token",
        "github_token",
        "client_secret",
        "aws_credentials",
        "keyword",
    ],
)
def test_secret_looking_keys(key: str) -> None:
    assert looks_secret(key)


@pytest.mark.parametrize("key", ["k", "model", "temperature", "PATH", "question", "top_p"])
def test_ordinary_keys(key: str) -> None:
    assert not looks_secret(key)


def test_redact_is_a_deep_copy_with_secret_values_masked() -> None:
    data = {
        "model": "gpt",
        "api_key": "sk-123",
        "nested": {"DB_PASSWORD": "hunter2", "list": [{"token": 5}, {"x": 1}]},
        "env_vars": {"OPENAI_API_KEY": {"secret": "openai"}, "HOME_TOKEN": {"env": "T"}},
        "auth": {"user": "u", "pw": "p"},
        "password": None,
    }
    before = copy.deepcopy(data)
    out = redact(data)
    assert data == before  # the input is untouched
    assert out == {
        "model": "gpt",
        "api_key": "***",
        "nested": {"DB_PASSWORD": "***", "list": [{"token": "***"}, {"x": 1}]},
        # references name where a secret lives; they hold none, so they stay readable
        "env_vars": {"OPENAI_API_KEY": {"secret": "openai"}, "HOME_TOKEN": {"env": "T"}},
        "auth": "***",  # a whole mapping under a secret key
        "password": None,
    }
    assert out["nested"] is not data["nested"]
    assert redact([1, "a", None]) == [1, "a", None]


def test_mask_url() -> None:
    assert mask_url(None) is None
    assert mask_url("postgresql://wtb:s3cret@db:5432/wtb") == "postgresql://wtb:***@db:5432/wtb"
    assert mask_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert mask_url("sqlite:///tmp/wtb.db") == "sqlite:///tmp/wtb.db"
    # Unparsable text is masked as well as it can be, never echoed with its password.
    assert "s3cret" not in mask_url("foo bar://u:s3cret@h/x")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("my key is sk-proj-AbCdEfGh12345678", "my key is ***"),
        ("sk-ant-api03-AbCdEfGh_12345678-xyz.", "***."),
        ("Authorization: Bearer abcDEF123456ghiJKL", "Authorization: Bearer ***"),
        ("token ghp_0123456789abcdefghijABCDEFGHIJ", "token ***"),
        ("AKIAIOSFODNN7EXAMPLE is an AWS key", "*** is an AWS key"),
        ("xoxb-1234567890-abcdef", "***"),
        ("see postgresql://u:s3cret@db/x now", "see postgresql://u:***@db/x now"),
    ],
)
def test_credential_shaped_text_is_masked_under_any_key(text: str, masked: str) -> None:
    assert mask_text(text) == masked
    assert redact({"prompt": text}) == {"prompt": masked}
    assert redact_text({"prompt_tokens": 3, "content": [text]}) == {
        "prompt_tokens": 3,  # redact_text keeps every key's value but masks text
        "content": [masked],
    }


@pytest.mark.parametrize(
    "text",
    [
        "the bearer of good news arrived",
        "Bearer responsibilities matter",
        "task-management and sk-short",
        "risk-assessment-framework-document",
        "postgresql://u@db/x",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert mask_text(text) == text
