"""Hypothesis fuzzing of every user input path: anything but a one-line WtbError is a bug.

Deterministic (``derandomize=True``) and bounded (``max_examples``) so the suite runs in CI in
well under a minute. Inputs: spec files (arbitrary YAML and JSON text, and structured
mutations of a valid spec), cases files, ``--input``/``--set``/``--variant`` values, workflow
references (only from a fixed set of harmless modules: importing arbitrary ones runs their
code) and state values returned by nodes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.batch import workflows as wf
from wtb_cli.common import parse_json, parse_pairs
from wtb_domain import WtbError, load_workflow
from wtb_domain.batch.plan import resolve
from wtb_domain.batch.spec import BatchSpec, load_spec, read_cases
from wtb_domain.state import encode_update

FUZZ = settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)

VALID: dict[str, Any] = {
    "name": "fuzz",
    "workflow": wf.LINEAR3,
    "variants": {
        "a": ["x", {"variant": "y", "params": {"tag": "z"}, "label": "yz"}],
        "b": ["x", "y"],
    },
    "cases": [{"id": "c1", "input": {"q": "one"}, "expected": {"answer": "one"}}],
    "repeats": 2,
    "evaluators": [{"type": "exact_match", "field": "answer"}],
    "baseline": "a=x,b=x",
    "environments": {"b": {"y": {"env_vars": {"FLAG": "1"}}}},
    "runner": "ray",  # environments are Ray's (the threadpool runner refuses them)
}


def only_wtb_errors(action: Callable[[], object]) -> None:
    """Run ``action``; a WtbError must be one line, any other exception fails the test."""
    try:
        action()
    except WtbError as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)


def full_load(path: Path) -> None:
    spec, base_dir = load_spec(path)
    resolve(spec)
    spec.load_cases(base_dir)


# --- values: JSON and the hostile things near it -------------------------------------------------

hostile_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["\ud800", "a\x00b", "[/bold]", "a,b", "k=v", "#1", " ", "", "2024-02-30", "é" * 300]
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**120, max_value=10**130),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
)
json_like = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*prefix, i)))
    return out


PATHS = [p for p in _paths(VALID) if p]


def _mutate(data: Any, path: tuple[Any, ...], value: Any, how: str) -> Any:
    data = json.loads(json.dumps(data))
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "delete":
        del parent[last]
    elif how == "add" and isinstance(parent, dict):
        parent[f"{last}_extra"] = value
    else:
        parent[last] = value
    return data


@st.composite
def mutated_specs(draw: st.DrawFn) -> Any:
    data: Any = json.loads(json.dumps(VALID))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        value = draw(json_like)
        how = draw(st.sampled_from(["set", "set", "delete", "add"]))
        data = _mutate(data, path, value, how)
    return data


def _dump_json(data: Any) -> str:
    # ensure_ascii escapes lone surrogates as \ud800 (the way a hostile file would hold them)
    return json.dumps(data, allow_nan=True)


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogatepass")
    path.write_bytes(text)
    return path


# --- the spec loader -----------------------------------------------------------------------------


def test_the_valid_spec_is_valid(tmp_path: Path) -> None:
    full_load(_write(tmp_path, "spec.json", _dump_json(VALID)))


@FUZZ
@given(text=st.text(max_size=300))
def test_spec_loader_on_arbitrary_yaml_text(tmp_path: Path, text: str) -> None:
    only_wtb_errors(lambda: full_load(_write(tmp_path, "spec.yaml", text)))


@FUZZ
@given(
    text=st.text(
        alphabet=st.sampled_from([*"{}[]:,-&*!|>'\"#%@`?\n\t aZ09.\\u", "\ud800", "é"]),
        max_size=200,
    )
)
def test_spec_loader_on_yaml_punctuation(tmp_path: Path, text: str) -> None:
    only_wtb_errors(lambda: full_load(_write(tmp_path, "spec.yaml", text)))


@FUZZ
@given(data=st.binary(max_size=200))
def test_spec_loader_on_arbitrary_bytes(tmp_path: Path, data: bytes) -> None:
    only_wtb_errors(lambda: full_load(_write(tmp_path, "spec.yaml", data)))
    only_wtb_errors(lambda: full_load(_write(tmp_path, "spec.json", data)))


@FUZZ
@given(text=st.text(max_size=300))
def test_spec_loader_on_arbitrary_json_text(tmp_path: Path, text: str) -> None:
    only_wtb_errors(lambda: full_load(_write(tmp_path, "spec.json", text)))


@FUZZ
@given(data=mutated_specs())
def test_spec_loader_on_mutated_specs(tmp_path: Path, data: Any) -> None:
    text = _dump_json(data)
    only_wtb_errors(lambda: full_load(_write(tmp_path, "spec.json", text)))
    only_wtb_errors(lambda: full_load(_write(tmp_path, "spec.yaml", text)))  # JSON is YAML


@FUZZ
@given(data=mutated_specs())
def test_batch_spec_parse_on_mutated_python_data(data: Any) -> None:
    only_wtb_errors(lambda: resolve(BatchSpec.parse(data)))


# --- cases reader --------------------------------------------------------------------------------


@FUZZ
@given(lines=st.lists(st.one_of(st.text(max_size=80), json_like.map(_dump_json)), max_size=5))
def test_cases_reader(tmp_path: Path, lines: list[str]) -> None:
    _write(tmp_path, "cases.jsonl", "\n".join(lines))
    only_wtb_errors(lambda: read_cases("cases.jsonl", tmp_path))


@FUZZ
@given(case=json_like)
def test_cases_reader_on_case_shaped_objects(tmp_path: Path, case: Any) -> None:
    good = {"id": "c1", "input": {"q": "one"}}
    lines = [_dump_json(good), _dump_json({"id": "c2", "input": case}), _dump_json(case)]
    _write(tmp_path, "cases.jsonl", "\n".join(lines))
    only_wtb_errors(lambda: read_cases("cases.jsonl", tmp_path))


# --- --input / --set / --variant -----------------------------------------------------------------


@FUZZ
@given(value=st.one_of(st.text(max_size=200), json_like.map(_dump_json)))
def test_parse_json_on_arbitrary_values(tmp_path: Path, value: str) -> None:
    only_wtb_errors(lambda: parse_json(value, "--input"))
    path = _write(tmp_path, "input.json", value)
    only_wtb_errors(lambda: parse_json(f"@{path}", "--set"))


@FUZZ
@given(values=st.lists(st.text(max_size=20), max_size=5))
def test_parse_pairs_on_arbitrary_values(values: list[str]) -> None:
    only_wtb_errors(lambda: parse_pairs(values, "--variant"))


# --- workflow references -------------------------------------------------------------------------

SAFE_MODULES = [
    "tests.batch.workflows",
    "tests.fuzz.broken_module",
    "wtb_domain.demo.qa",
    "json",
    "sys",
    "os",
    "builtins",
    "nosuch_module_for_fuzz",
]
ATTRS = ["linear3", "workflow", "LINEAR3", "exit", "system", "input", "loads", "reset", "runs"]


@FUZZ
@given(
    module=st.sampled_from(SAFE_MODULES),
    attr=st.one_of(st.sampled_from(ATTRS), st.text(max_size=12)),
    sep=st.sampled_from([":", "::", ".", ""]),
    prefix=st.sampled_from(["", ".", "..", " "]),
)
def test_workflow_refs(module: str, attr: str, sep: str, prefix: str) -> None:
    ref = f"{prefix}{module}{sep}{attr}"
    if prefix or sep != ":" or not attr.isidentifier():
        # malformed refs never reach an import, so any text is safe here
        only_wtb_errors(lambda: load_workflow(ref))
        return
    only_wtb_errors(lambda: load_workflow(ref))
    only_wtb_errors(lambda: resolve(BatchSpec.parse({"workflow": ref, "cases": []})))


@FUZZ
@given(ref=st.text(alphabet=st.characters(blacklist_categories=["L", "N"]), max_size=40))
def test_workflow_refs_of_arbitrary_symbols(ref: str) -> None:
    # no letters or digits: never an importable module name
    only_wtb_errors(lambda: load_workflow(ref))


# --- state ---------------------------------------------------------------------------------------


class _Opaque:
    pass


state_values = st.recursive(
    st.one_of(scalars, st.just(_Opaque()), st.frozensets(st.integers(), max_size=2)),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.one_of(hostile_text, st.integers()), inner, max_size=3)
        | st.tuples(inner)
    ),
    max_leaves=10,
)


@FUZZ
@given(update=st.dictionaries(st.one_of(hostile_text, st.integers()), state_values, max_size=3))
def test_state_values(update: dict[Any, Any]) -> None:
    def encode() -> None:
        encoded = encode_update({}, update, node="fuzz")
        for value in encoded.new_blobs.values():
            json.loads(value)  # what is stored reads back

    try:
        encode()
    except WtbError as exc:
        message = str(exc)
        assert "\n" not in message and "node 'fuzz'" in message, message


def test_floats_that_json_refuses_are_state_errors() -> None:
    for bad in (math.inf, -math.inf, math.nan):
        try:
            encode_update({}, {"x": bad}, node="n")
        except WtbError as exc:
            assert "node 'n'" in str(exc) and "'x'" in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted as state")
