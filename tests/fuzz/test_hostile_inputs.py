"""Hostile and careless inputs: each gives one WtbError whose one-line message says where and why.

Covers the spec loader (YAML and JSON files), the cases reader, ``--input``/``--set``
(``parse_json``), ``--variant`` (``parse_pairs``), workflow references and state values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.batch import workflows as wf
from wtb_cli.common import parse_json, parse_pairs
from wtb_domain import SpecError, StateError, WorkflowError, load_workflow
from wtb_domain.batch.plan import resolve
from wtb_domain.batch.spec import BatchSpec, load_spec, read_cases
from wtb_domain.state import encode_update

GOOD = (
    f"workflow: {wf.LINEAR3}\nvariants:\n  a: [x, y]\ncases:\n  - {{id: c1, input: {{q: one}}}}\n"
)


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    assert "Traceback" not in message
    return message


def spec_error(tmp_path: Path, text: str | bytes, name: str = "spec.yaml") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        spec, _ = load_spec(path)
        resolve(spec)
    return one_line(info)


def test_the_good_spec_loads(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(GOOD)
    spec, _ = load_spec(tmp_path / "spec.yaml")
    assert [c.name for c in resolve(spec).combinations] == ["a=x", "a=y"]


# --- YAML: only JSON, written out ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (GOOD + "name: &n qa\nbaseline: *n\n", 6, "anchors (&n) are not allowed"),
        ("a: &x [1]\nb: *x\n", 1, "anchors"),
        ("a: *x\n", 1, "aliases (*x) are not allowed"),
        (GOOD + "repeats: 1\nrepeats: 2\n", 7, "duplicate key 'repeats'"),
        (GOOD + "name: 2024-02-30\n", 6, "is a YAML date; quote it"),
        (GOOD + "name: 2024-02-03\n", 6, "is a YAML date; quote it"),
        (GOOD + "evaluators: [{type: contains, value: !!binary aGk=}]\n", 6, "!!binary"),
        (GOOD + "nondeterministic_nodes: !!set {a}\n", 6, "!!set"),
        (GOOD + "prefix_sharing: !!bool maybe\n", 6, "not a boolean"),
        (GOOD + "repeats: !!int abc\n", 6, "not a valid int"),
        (GOOD + "name: !!python/object/apply:os.system [ls]\n", 6, "python/object/apply"),
        (GOOD + "name: !custom x\n", 6, "!custom"),
        (GOOD + "pass_threshold: .nan\n", 6, "not a JSON number"),
        (GOOD + "1: x\n", 6, "not a string"),
        (GOOD + "<<: {name: x}\n", 6, "merge keys"),
        (GOOD + "repeats: " + "9" * 5000 + "\n", 6, "integer too long"),
        ("name: [unclosed\n", 2, "not valid YAML/JSON"),
    ],
)
def test_yaml_refuses_what_is_not_json(tmp_path: Path, text: str, line: int, words: str) -> None:
    message = spec_error(tmp_path, text)
    assert message.startswith(f"spec file {tmp_path / 'spec.yaml'}:{line}"), message
    assert words in message, message


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)
    )
    assert "anchors" in spec_error(tmp_path, bomb)


@pytest.mark.parametrize("name", ["spec.yaml", "spec.json"])
def test_nesting_10000_deep(tmp_path: Path, name: str) -> None:
    deep = '{"workflow": "x", "cases": ' + "[" * 10000 + "]" * 10000 + "}"
    assert "nested too deeply" in spec_error(tmp_path, deep, name)


@pytest.mark.parametrize("name", ["spec.yaml", "spec.json"])
def test_lone_surrogates_and_nul(tmp_path: Path, name: str) -> None:
    data = {"workflow": wf.LINEAR3, "cases": [{"id": "c1", "input": {"q": "one"}}]}
    surrogate = json.dumps({**data, "name": "x"}).replace('"x"', '"\\ud800"')
    assert "lone surrogate" in spec_error(tmp_path, surrogate, name)
    nul = json.dumps({**data, "name": "a\u0000b"})
    assert "NUL" in spec_error(tmp_path, nul, name)


def test_json_specs_refuse_duplicates_nan_and_huge_numbers(tmp_path: Path) -> None:
    assert "duplicate key 'name'" in spec_error(tmp_path, '{"name": "a", "name": "b"}', "s.json")
    assert "NaN is not JSON" in spec_error(tmp_path, '{"pass_threshold": NaN}', "s.json")
    assert "digits" in spec_error(tmp_path, '{"repeats": ' + "7" * 5000 + "}", "s.json")


# --- files ---------------------------------------------------------------------------------------


def test_non_utf8_spec_and_directory_as_spec(tmp_path: Path) -> None:
    message = spec_error(tmp_path, GOOD.encode() + b"name: caf\xe9\n")
    assert message.startswith(f"spec file {tmp_path / 'spec.yaml'}:6 is not UTF-8"), message
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "dir.yaml")
    assert "is a directory" in one_line(info)


def test_cases_file_hostile_lines(tmp_path: Path) -> None:
    def error(content: bytes) -> str:
        (tmp_path / "cases.jsonl").write_bytes(content)
        with pytest.raises(SpecError) as info:
            read_cases("cases.jsonl", tmp_path)
        return one_line(info)

    ok = b'{"id": "a", "input": {}}\n'
    assert ":2 is not UTF-8" in error(ok + b'{"id": "\xff"}\n')
    assert "cases.jsonl:2: nested too deeply" in error(ok + b"[" * 10000 + b"]" * 10000 + b"\n")
    assert "cases.jsonl:2 at input.q: text holds a lone surrogate" in error(
        ok + b'{"id": "b", "input": {"q": "\\ud800"}}\n'
    )
    assert "digits" in error(ok + b'{"id": "b", "input": {"n": ' + b"1" * 5000 + b"}}\n")
    assert "duplicate key 'id'" in error(b'{"id": "a", "id": "b", "input": {}}\n')
    assert "cases_file:1.id" in error(b'{"id": 7, "input": {}}\n')  # no int -> str coercion
    assert "cases_file:1.id" in error(b'{"id": "' + b"c" * 256 + b'", "input": {}}\n')
    (tmp_path / "folder").mkdir()
    with pytest.raises(SpecError, match="is a directory"):
        read_cases("folder", tmp_path)


# --- strict types and PostgreSQL lengths ---------------------------------------------------------


def base(**fields: Any) -> dict[str, Any]:
    return {"workflow": wf.LINEAR3, "cases": [{"id": "c1", "input": {"q": "one"}}], **fields}


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"repeats": "3"}, "repeats"),
        ({"repeats": True}, "repeats"),
        ({"repeats": 2.0}, "repeats"),
        ({"max_workers": "4"}, "max_workers"),
        ({"prefix_sharing": "yes"}, "prefix_sharing"),
        ({"fail_on_error": 1}, "fail_on_error"),
        ({"pass_threshold": "0.5"}, "pass_threshold"),
        ({"ray": {"num_cpus": "2"}}, "ray.num_cpus"),
        ({"name": "n" * 256}, "name"),
        ({"workflow": "m" * 600 + ":x"}, "workflow"),
        ({"batch_id": "b" * 65}, "batch_id"),
        ({"cases": [{"id": "c" * 256, "input": {}}]}, "cases[0].id"),
        ({"cases": [{"id": "", "input": {}}]}, "cases[0].id"),
        ({"variants": {"a": [{"variant": "x", "label": "l" * 256}]}}, "variants.a[0].label"),
        ({"variants": {"a": [{"variant": "v" * 256}]}}, "variants.a[0].variant"),
        ({"environments": {"a": {"x": {"pip": None}}}}, "environments.a.x"),
        ({"environments": {"a": {"x": {"pip": []}}}}, "environments.a.x.pip"),
        ({"environments": {"a": {"x": {"env_vars": "a"}}}}, "environments.a.x.env_vars"),
        ({"environments": {"a": {"x": {"env_vars": None}}}}, "environments.a.x"),
        ({"environments": {"a": {"x": {"env_vars": {"N": 1}}}}}, "environments.a.x.env_vars.N"),
    ],
)
def test_no_coercion_and_no_value_postgres_would_reject(fields: dict[str, Any], path: str) -> None:
    with pytest.raises(SpecError) as info:
        BatchSpec.parse(base(**fields))
    message = one_line(info)
    parts = message.removeprefix("invalid batch spec: ").split(" | ")
    assert any(p.startswith(f"{path}:") or p.startswith(f"{path}.") for p in parts), message


def test_pip_left_empty_in_a_yaml_spec(tmp_path: Path) -> None:
    text = GOOD + "environments:\n  a:\n    x:\n      pip:\n"
    message = spec_error(tmp_path, text)
    assert "environments.a.x" in message and "pip: is empty" in message


def test_environment_values_may_be_references() -> None:
    env = {"env_vars": {"OPENAI_API_KEY": {"secret": "openai"}, "HOME": {"env": "HOME"}}}
    data = base(variants={"a": ["x"]}, environments={"a": {"x": env}}, runner="ray")
    spec = BatchSpec.parse(data)
    (leaf,) = resolve(spec).leaves
    assert resolve(spec).leaf_envs[leaf.key] == env


def test_combination_names_longer_than_a_result_can_store() -> None:
    long_param = {"variant": "x", "params": {"tag": "x", "note": "n" * 300}}
    spec = base(variants={n: [long_param] for n in ("a", "b", "c")})
    with pytest.raises(SpecError) as info:
        resolve(BatchSpec.parse(spec))
    message = one_line(info)
    assert message.startswith("variants: combination name") and "labels" in message
    # a long ad-hoc variant name is shortened (prefix + digest), still unique per params
    resolved = resolve(BatchSpec.parse(base(variants={"a": [long_param]})))
    (name,) = resolved.combinations[0].selection.values()
    assert len(name) <= 255 and name.startswith('x(note="nnn')
    labelled = {n: [{**long_param, "label": f"long-{n}"}] for n in ("a", "b", "c")}
    assert resolve(BatchSpec.parse(base(variants=labelled))).combinations[0].name == (
        "a=long-a,b=long-b,c=long-c"
    )


# --- --input / --set / --variant -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("{not json", "not valid JSON"),
        ('{"a": 1, "a": 2}', "duplicate key"),
        ("[" * 10000 + "]" * 10000, "nested too deeply"),
        ('{"n": ' + "1" * 5000 + "}", "digits"),
        ('{"q": "\\ud800"}', "lone surrogate"),
        ('{"q": NaN}', "NaN"),
        ('{"q": 1e999}', "out of range"),
    ],
)
def test_parse_json_errors(value: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_json(value, "--input")
    message = one_line(info)
    assert message.startswith("--input") and words in message, message


def test_parse_json_files(tmp_path: Path) -> None:
    (tmp_path / "in.json").write_bytes(b'{"q": "caf\xe9"}')
    with pytest.raises(SpecError, match=r"^--set: file .*in\.json:1 is not UTF-8"):
        parse_json(f"@{tmp_path / 'in.json'}", "--set")
    with pytest.raises(SpecError, match=r"^--set: file .* is a directory"):
        parse_json(f"@{tmp_path}", "--set")
    with pytest.raises(SpecError, match=r"^--set: file .*missing\.json does not exist"):
        parse_json(f"@{tmp_path / 'missing.json'}", "--set")
    (tmp_path / "ok.json").write_text('{"q": "café"}', encoding="utf-8")
    assert parse_json(f"@{tmp_path / 'ok.json'}", "--set") == {"q": "café"}


def test_parse_pairs() -> None:
    assert parse_pairs(["a=x", "b = y"], "--variant") == {"a": "x", "b": "y"}
    for bad in (["a"], ["=x"], ["a="]):
        with pytest.raises(SpecError, match=r"^--variant: expected NODE=VARIANT"):
            parse_pairs(bad, "--variant")
    with pytest.raises(SpecError, match="given twice"):
        parse_pairs(["a=x", "a=y"], "--variant")


# --- workflow references -------------------------------------------------------------------------


def broken_factory() -> Any:
    raise RuntimeError("cannot build\nsecond line")


def needs_args(x: int) -> Any:
    return x


not_a_workflow = 42


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        (".relative:workflow", "must look like 'package.module:attr'"),
        ("tests.batch:", "must look like"),
        ("no colon", "must look like"),
        ("a.b:c.d", "must look like"),
        ("nosuch_module_xyz:workflow", "module 'nosuch_module_xyz' not found"),
        ("tests.batch.workflows:missing", "has no attribute 'missing'"),
        ("sys:exit", "builtin_function_or_method, not a Workflow"),
        ("os:system", "not a Workflow"),
        ("builtins:input", "not a Workflow"),
        ("subprocess:Popen", "not a Workflow"),
        ("tests.fuzz.test_hostile_inputs:broken_factory", "RuntimeError: cannot build second"),
        ("tests.fuzz.test_hostile_inputs:needs_args", "needs arguments"),
        ("tests.fuzz.test_hostile_inputs:not_a_workflow", "points to a int"),
        ("tests.fuzz.broken_module:workflow", "importing module 'tests.fuzz.broken_module' failed"),
    ],
)
def test_workflow_reference_errors(ref: str, words: str) -> None:
    with pytest.raises(WorkflowError) as info:
        load_workflow(ref)
    message = one_line(info)
    assert words in message, message
    # through a spec, the same error is a SpecError on the workflow field
    with pytest.raises(SpecError, match=r"^workflow: "):
        resolve(BatchSpec.parse(base(workflow=ref)))


# --- state ---------------------------------------------------------------------------------------


def _deep(levels: int) -> list[Any]:
    out: list[Any] = []
    cur = out
    for _ in range(levels):
        cur.append([])
        cur = cur[0]
    return out


@pytest.mark.parametrize(
    ("update", "words"),
    [
        ({"docs": {1, 2}}, "non-JSON value for key 'docs'"),
        ({"score": float("nan")}, "non-JSON value for key 'score'"),
        ({"docs": _deep(10000)}, "nested too deeply for key 'docs'"),
        ({"answer": "\ud800"}, "not Unicode for key 'answer'"),
        ({"answer": {"inner": ["ok", "\udcff"]}}, "not Unicode for key 'answer'"),
        ({"\ud800": 1}, "key that is not Unicode"),
        ({3: 1}, "non-string key 3"),
    ],
)
def test_state_errors_name_node_and_key(update: dict[Any, Any], words: str) -> None:
    with pytest.raises(StateError) as info:
        encode_update({}, update, node="retrieve")
    message = one_line(info)
    assert "node 'retrieve'" in message and words in message, message


def test_yaml_safe_dump_of_a_spec_round_trips(tmp_path: Path) -> None:
    data = base(name="qa", variants={"a": ["x", {"variant": "y", "params": {"tag": "z"}}]})
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    spec, _ = load_spec(tmp_path / "s.yaml")
    assert spec == BatchSpec.parse(data)


def test_a_spec_with_environments_round_trips_through_its_dump() -> None:
    """What the flow sends its tasks (``model_dump(mode="json")``) parses back to the spec."""
    env = {"pip": ["requests"], "env_vars": {"A": "1", "B": {"env": "B"}}, "working_dir": "."}
    data = base(variants={"a": ["x"]}, environments={"a": {"x": env}}, runner="ray")
    spec = BatchSpec.parse(data)
    dumped = spec.model_dump(mode="json")
    assert dumped["environments"] == {"a": {"x": env}}
    assert BatchSpec.parse(json.loads(json.dumps(dumped))) == spec
    only_env = BatchSpec.parse(base(environments={"a": {"x": {"env_vars": {"A": "1"}}}}))
    assert BatchSpec.parse(only_env.model_dump(mode="json")) == only_env
