"""Hostile inputs through the ``wtb`` CLI: exit code 2 and exactly one line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.batch import workflows as wf
from wtb_cli.main import app

SPEC = f"workflow: {wf.LINEAR3}\ncases:\n  - {{id: c1, input: {{q: one}}}}\n"


def assert_one_line_exit_2(args: list[str], *words: str) -> str:
    result = CliRunner().invoke(app, args)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, lines, result.exception)
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.startswith("error: "), line
    for word in words:
        assert word in line, line
    return line


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (SPEC + "name: &n x\nbaseline: *n\n", ("spec.yaml:4", "anchors")),
        (SPEC + "repeats: 1\nrepeats: 2\n", ("spec.yaml:5", "duplicate key 'repeats'")),
        (SPEC + "name: 2024-02-30\n", ("spec.yaml:4", "YAML date")),
        (SPEC + "repeats: !!int abc\n", ("spec.yaml:4", "not a valid int")),
        (SPEC + 'repeats: "3"\n', ("repeats:", "integer")),
        (SPEC + "prefix_sharing: !!bool maybe\n", ("not a boolean",)),
        ((SPEC + "name: caf").encode() + b"\xe9\n", ("spec.yaml:4 is not UTF-8",)),
        ("[" * 10000 + "]" * 10000, ("nested too deeply",)),
        (SPEC + "environments:\n  a:\n    x:\n      env_vars: a\n", ("environments.a.x",)),
        (
            SPEC + "environments:\n  a:\n    y:\n      env_vars: {X: '1'}\n",
            ("environments.a.y.env_vars", "threadpool runner", "runner: ray"),
        ),
    ],
)
def test_batch_run_refuses_bad_specs(
    tmp_path: Path, content: str | bytes, words: tuple[str, ...]
) -> None:
    spec = tmp_path / "spec.yaml"
    if isinstance(content, bytes):
        spec.write_bytes(content)
    else:
        spec.write_text(content, encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'wtb.db'}"
    assert_one_line_exit_2(["batch", "run", str(spec), "--db", db], *words)


def test_batch_run_on_a_directory(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'wtb.db'}"
    assert_one_line_exit_2(["batch", "run", str(tmp_path), "--db", db], "is a directory")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("[" * 10000 + "]" * 10000, ("--input", "nested too deeply")),
        ('{"q": "\\ud800"}', ("--input", "lone surrogate")),
        ('{"n": ' + "9" * 5000 + "}", ("--input", "digits")),
        ('{"q": 1, "q": 2}', ("--input", "duplicate key")),
    ],
)
def test_run_refuses_bad_input(tmp_path: Path, value: str, words: tuple[str, ...]) -> None:
    db = f"sqlite:///{tmp_path / 'wtb.db'}"
    assert_one_line_exit_2(["run", wf.LINEAR3, "--input", value, "--db", db], *words)


def test_run_refuses_a_non_utf8_input_file(tmp_path: Path) -> None:
    (tmp_path / "input.json").write_bytes(b'{"q": "caf\xe9"}')
    db = f"sqlite:///{tmp_path / 'wtb.db'}"
    args = ["run", wf.LINEAR3, "--input", f"@{tmp_path / 'input.json'}", "--db", db]
    assert_one_line_exit_2(args, "is not UTF-8")


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        ("sys:exit", ("sys:exit", "standard library")),
        (".relative:workflow", ("package.module:attr",)),
        ("tests.fuzz.broken_module:workflow", ("importing module",)),
    ],
)
def test_run_refuses_bad_workflow_refs(tmp_path: Path, ref: str, words: tuple[str, ...]) -> None:
    db = f"sqlite:///{tmp_path / 'wtb.db'}"
    assert_one_line_exit_2(["run", ref, "--input", '{"q": "one"}', "--db", db], *words)


def test_fork_refuses_bad_set_before_touching_the_database(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'wtb.db'}"
    assert_one_line_exit_2(["fork", "CP", "--set", '{"a": NaN}', "--db", db], "--set", "NaN")
    assert_one_line_exit_2(["fork", "CP", "--variant", "a", "--db", db], "NODE=VARIANT")


@pytest.mark.parametrize(
    ("variant", "words"),
    [
        ("a", ("--variant", "NODE=VARIANT")),
        ("a=nope", ("--variant", "'a'", "'nope'", "x, y, z")),
        ("zz=x", ("--variant", "'zz'", "a, b, c")),
    ],
)
def test_run_refuses_a_bad_variant_before_touching_the_database(
    tmp_path: Path, variant: str, words: tuple[str, ...]
) -> None:
    db_file = tmp_path / "wtb.db"
    args = ["run", wf.LINEAR3, "--input", '{"q": "one"}', "--variant", variant]
    assert_one_line_exit_2([*args, "--db", f"sqlite:///{db_file}"], *words)
    assert not db_file.exists()
