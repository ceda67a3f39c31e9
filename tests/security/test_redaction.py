"""Redaction: what counts as a secret, deep redaction, credential-shaped text, masked database
URLs (and resolved on the worker), the stored spec and its overlay, env_vars references."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from wtb_domain.batch.credentials import (
    DatabaseRef,
    apply_overlay,
    resolve_database_url,
    secret_overlay,
)
from wtb_domain.batch.environments import resolve_runtime_env
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.batch.stored import spec_from_stored, stored_spec
from wtb_domain.errors import SpecError, StoreError
from wtb_domain.redaction import looks_secret, mask_text, mask_url, redact, redact_text

SPEC = {
    "workflow": "tests.batch.workflows:linear3",
    "variants": {"a": ["x", {"variant": "y", "params": {"api_key": "sk-1", "k": 2}}]},
    "environments": {
        "a": {
            "y": {
                "env_vars": {
                    "OPENAI_API_KEY": "sk-2",
                    "FROM_BLOCK": {"secret": "blk"},
                    "PLAIN": "visible",
                }
            }
        }
    },
    "cases": [{"id": "c1", "input": {"q": "one"}}],
    "database_url": "postgresql+psycopg://wtb:hunter2@db.example:5433/wtb",
    "database_password_secret": "wtb-db-password",
}


SECRET_KEYS = [
    "api_key",
    "OPENAI_API_KEY",
    "DB_PASSWORD",
    "passwd",
    "auth",
    "Authorization",
    "token",
    "github_token",
    "client_secret",
    "credentials",
    "aws_credentials",
    "keyword",  # contains "key": masked too (a false positive, on the safe side)
]
ORDINARY_KEYS = ["k", "model", "temperature", "PATH", "question", "top_p", "database_url"]


@pytest.mark.parametrize(
    ("key", "secret"),
    [*((k, True) for k in SECRET_KEYS), *((k, False) for k in ORDINARY_KEYS)],
)
def test_looks_secret(key: str, secret: bool) -> None:
    assert looks_secret(key) is secret


def test_redact_hides_values_keeps_references_and_masks_urls() -> None:
    data = {"x": [{"token": "t", "n": 1}], "auth": {"secret": "NAME"}, "u": SPEC["database_url"]}
    out = redact(data)
    assert out == {
        "x": [{"token": "***", "n": 1}],
        "auth": {"secret": "NAME"},
        "u": "postgresql+psycopg://wtb:***@db.example:5433/wtb",
    }
    assert data["x"][0]["token"] == "t"  # a copy


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
    assert mask_url("postgresql://u@h/d") == "postgresql://u@h/d"
    assert mask_url("sqlite:///tmp/wtb.db") == "sqlite:///tmp/wtb.db"
    assert mask_url("sqlite:///x.db") == "sqlite:///x.db"
    assert mask_url("postgresql://u:p%40ss@h/d") == "postgresql://u:***@h/d"
    assert mask_url("foo://u:pw@x/y") == "foo://u:***@x/y"
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


def test_stored_spec_has_no_secret_and_the_overlay_restores_it() -> None:
    spec = BatchSpec.parse(SPEC)
    cases = [c.model_dump(mode="json") for c in spec.load_cases()]
    stored, overlay = stored_spec(spec, "b1", cases)
    text = repr(stored)
    assert "sk-1" not in text and "sk-2" not in text and "hunter2" not in text
    assert "cases" not in stored or stored["cases"] is None
    assert stored["environments"]["a"]["y"]["env_vars"]["FROM_BLOCK"] == {"secret": "blk"}
    assert stored["environments"]["a"]["y"]["env_vars"]["PLAIN"] == "visible"
    assert "hunter2" not in repr(overlay)  # the database password never travels
    assert stored["database_password_secret"] == "wtb-db-password"  # a name, kept
    restored = spec_from_stored(stored, overlay)
    assert restored.variants["a"][1].params == {"api_key": "sk-1", "k": 2}
    assert restored.environments["a"]["y"].env_vars["OPENAI_API_KEY"] == "sk-2"
    # without the overlay (another process): a clear error, not a silent "***"
    with pytest.raises(SpecError, match=r"variants\.a\.1\.params\.api_key: its literal secret"):
        spec_from_stored(stored, {})
    plain = BatchSpec.parse({**SPEC, "variants": {}, "environments": {}})
    stored_plain, overlay_plain = stored_spec(plain, "b2", cases)
    assert overlay_plain == {}
    assert spec_from_stored(stored_plain, {}).database_password_secret == "wtb-db-password"


def test_overlay_round_trip() -> None:
    data = {"a": [{"password": "p", "q": 1}], "b": {"token": {"env": "X"}}}
    overlay = secret_overlay(data)
    assert list(overlay.values()) == ["p"]
    assert apply_overlay(redact(data), overlay) == data
    # a credential pasted into text (a prompt param) is masked in store and restored too
    prompt = {"params": {"prompt": "key sk-proj-AbCdEfGh12345678 here"}}
    assert redact(prompt) == {"params": {"prompt": "key *** here"}}
    assert apply_overlay(redact(prompt), secret_overlay(prompt)) == prompt


def test_combination_names_keep_secret_params_out() -> None:
    spec = BatchSpec.parse(SPEC)
    assert spec.variants["a"][1].name == "y(api_key=***,k=2)"


# --- the worker-side database URL ----------------------------------------------------------------

MASKED = "postgresql+psycopg://wtb:***@db.example:5433/wtb"


def test_a_url_without_a_masked_password_is_used_as_is() -> None:
    assert resolve_database_url(DatabaseRef("sqlite:////x/wtb.db"), environ={}) == (
        "sqlite:////x/wtb.db"
    )


def test_password_from_wtb_database_url_when_it_names_the_same_database() -> None:
    env = {"WTB_DATABASE_URL": "postgresql+psycopg://wtb:envpw@db.example:5433/wtb"}
    ref = DatabaseRef("postgresql+psycopg://wtb:***@db.example:5433/wtb", None)
    assert resolve_database_url(ref, environ=env).endswith("wtb:envpw@db.example:5433/wtb")
    other = {"WTB_DATABASE_URL": "postgresql+psycopg://wtb:envpw@elsewhere:5433/wtb"}
    with pytest.raises(StoreError, match=r"no password for database .*wtb:\*\*\*@db\.example"):
        resolve_database_url(ref, environ={**other, "PGPASSFILE": "/nonexistent"})


def test_password_from_a_secret_block_then_pgpassword() -> None:
    ref = DatabaseRef("postgresql+psycopg://u2:***@h2/d2", "db-pw")
    got = resolve_database_url(ref, {"db-pw": "blockpw"}.__getitem__, environ={})
    assert got == "postgresql+psycopg://u2:blockpw@h2/d2"
    no_block = DatabaseRef("postgresql+psycopg://u2:***@h2/d2")
    assert resolve_database_url(no_block, environ={"PGPASSWORD": "x"}) == (
        "postgresql+psycopg://u2@h2/d2"
    )


def test_pgpass_file(tmp_path: Path) -> None:
    passfile = tmp_path / "pgpass"
    passfile.write_text("h3:5432:d3:u3:pw\n")
    ref = DatabaseRef("postgresql+psycopg://u3:***@h3/d3")
    assert resolve_database_url(ref, environ={"PGPASSFILE": str(passfile)}) == (
        "postgresql+psycopg://u3@h3/d3"
    )


def test_no_credential_is_one_clear_line() -> None:
    ref = DatabaseRef("postgresql+psycopg://u4:***@h4/d4")
    with pytest.raises(StoreError) as info:
        resolve_database_url(ref, environ={"PGPASSFILE": "/nonexistent"})
    message = str(info.value)
    assert "\n" not in message
    assert "WTB_DATABASE_URL" in message and "database_password_secret" in message


def test_this_process_resolves_urls_it_registered() -> None:
    ref = DatabaseRef.for_url("postgresql+psycopg://u5:known@h5/d5")
    assert ref.url == "postgresql+psycopg://u5:***@h5/d5"
    assert resolve_database_url(ref, environ={}) == "postgresql+psycopg://u5:known@h5/d5"
    assert DatabaseRef.from_param(ref.to_param()) == ref


# --- env_vars references -------------------------------------------------------------------------


def test_runtime_env_references_resolve_on_the_worker() -> None:
    env = {
        "pip": ["x"],
        "env_vars": {"A": "lit", "B": {"secret": "blk"}, "C": {"env": "SRC"}},
    }
    out = resolve_runtime_env(env, {"blk": "from-block"}.__getitem__, {"SRC": "from-env"})
    assert out == {"pip": ["x"], "env_vars": {"A": "lit", "B": "from-block", "C": "from-env"}}
    assert env["env_vars"]["B"] == {"secret": "blk"}  # not changed in place
    assert resolve_runtime_env(None) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"env": "MISSING"}, "env_vars.V: {env: MISSING} but MISSING is not set"),
        ({"nope": "x"}, "env_vars.V: give a string"),
        ("***", "env_vars.V: its literal secret is never stored"),
    ],
)
def test_bad_env_values_are_one_line_spec_errors(value: object, message: str) -> None:
    with pytest.raises(SpecError) as info:
        resolve_runtime_env({"env_vars": {"V": value}}, None, {})
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
