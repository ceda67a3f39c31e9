"""BatchSpec: loading YAML/JSON specs and the errors users see, each naming the field path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.batch import workflows as wf
from wtb_domain import SpecError
from wtb_domain.batch.plan import resolve
from wtb_domain.batch.spec import BatchSpec, RayConfig, load_spec

CASES = [{"id": "c1", "input": {"q": "one"}}, {"id": "c2", "input": {"q": "two"}}]


def spec_dict(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "workflow": wf.LINEAR3,
        "variants": {"a": ["x", "y"], "b": ["x", {"variant": "z", "label": "zed"}]},
        "cases": CASES,
    }
    data.update(overrides)
    return data


def error_of(data: dict[str, Any]) -> str:
    """The message of the SpecError that parsing (then resolving) ``data`` raises."""
    with pytest.raises(SpecError) as info:
        resolve(BatchSpec.parse(data))
    return str(info.value)


def detail_lines(message: str) -> list[str]:
    """The per-field parts of a one-line parse error (``invalid batch spec: a: ... | b: ...``)."""
    assert "\n" not in message, "spec errors are one line"
    body = message.removeprefix("invalid batch spec: ")
    return [part.strip() for part in body.split(" | ") if part.strip()]


# --- loading -------------------------------------------------------------------------------------


def test_yaml_and_json_files_load_to_the_same_spec(tmp_path: Path) -> None:
    data = spec_dict(repeats=2, baseline="a=x,b=x", max_workers=3)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "spec.json").write_text(json.dumps(data))

    from_yaml, yaml_dir = load_spec(tmp_path / "spec.yaml")
    from_json, json_dir = load_spec(str(tmp_path / "spec.json"))

    assert from_yaml == from_json
    assert yaml_dir == json_dir == tmp_path.resolve()
    assert from_yaml.workflow == wf.LINEAR3
    assert from_yaml.repeats == 2
    assert from_yaml.max_workers == 3
    assert [c.name for c in from_yaml.variants["b"]] == ["x", "zed"]
    assert [c.id for c in from_yaml.load_cases(yaml_dir)] == ["c1", "c2"]


def test_defaults_of_a_minimal_spec() -> None:
    spec = BatchSpec.parse({"workflow": wf.LINEAR3, "cases": CASES})
    assert spec.runner == "threadpool"
    assert spec.repeats == 1
    assert spec.prefix_sharing is True
    assert spec.fail_on_error is False
    assert spec.ray == RayConfig.local()
    resolved = resolve(spec)
    assert [c.name for c in resolved.combinations] == ["default"]


def test_variant_choices_get_names_from_label_or_params() -> None:
    spec = BatchSpec.parse(
        {
            "workflow": wf.SCHEMA,
            "variants": {
                "retrieve": [
                    "keyword",
                    {"variant": "keyword", "params": {"k": 5}},
                    {"variant": "bm25", "params": {"k": 1}, "label": "bm25-narrow"},
                ]
            },
            "cases": CASES,
        }
    )
    resolved = resolve(spec)
    names = [c.name for c in resolved.combinations]
    assert names == [
        "retrieve=keyword",
        "retrieve=keyword(k=5)",
        "retrieve=bm25-narrow",
    ]
    # what runs (and what executions and results store) never is the label
    assert [c.selection for c in resolved.combinations] == [
        {"retrieve": "keyword"},
        {"retrieve": "keyword(k=5)"},
        {"retrieve": "bm25(k=1)"},
    ]
    variants = resolved.workflow.nodes["retrieve"].variants
    assert variants["keyword(k=5)"].params == {"k": 5}
    assert "bm25-narrow" not in variants
    # an ad-hoc variant keeps the base variant's other params and its function
    assert variants["bm25(k=1)"].params == {"k": 1, "mode": "bm25"}
    assert variants["bm25(k=1)"].fn is variants["bm25"].fn


def test_missing_spec_file_and_non_mapping_spec(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"spec file .*nope\.yaml does not exist"):
        load_spec(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- workflow: x\n")
    with pytest.raises(SpecError, match="must hold a mapping"):
        load_spec(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("workflow: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML/JSON"):
        load_spec(tmp_path / "broken.yaml")


# --- field paths of parse errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"repeats": 0}, "repeats"),
        ({"typo": 1}, "typo"),
        ({"runner": "dask"}, "runner"),
        ({"pass_threshold": 1.5}, "pass_threshold"),
        ({"batch_id": "has spaces"}, "batch_id"),
        ({"ray": {"num_cpus": 0}}, "ray.num_cpus"),
        ({"ray": {"num_gpus": 1}}, "ray.num_gpus"),
        ({"variants": {"a": [{"variant": "x", "bogus": 1}]}}, "variants.a[0].bogus"),
        ({"variants": {"a": [{"params": {"k": 1}}]}}, "variants.a[0].variant"),
        ({"cases": [{"id": "c1"}]}, "cases[0].input"),
        ({"cases": [{"id": "c1", "input": {}, "expect": {}}]}, "cases[0].expect"),
    ],
)
def test_parse_errors_name_the_field_path(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        BatchSpec.parse(spec_dict(**changes))
    lines = detail_lines(str(info.value))
    assert any(line.startswith(f"{field}:") for line in lines), lines


def test_unknown_variant_names_its_position() -> None:
    message = error_of(spec_dict(variants={"a": ["x", "nope"]}))
    assert message.startswith("variants.a[1].variant"), message
    assert "'nope'" in message
    assert "x, y, z" in message  # lists the known variants


def test_param_schema_violation_names_the_param() -> None:
    message = error_of(
        {
            "workflow": wf.SCHEMA,
            "variants": {"retrieve": [{"variant": "keyword", "params": {"k": 0}}]},
            "cases": CASES,
        }
    )
    assert message.startswith("variants.retrieve[0].params.k"), message
    assert "greater than 0" in message


def test_param_schema_checks_every_choice_and_unknown_params() -> None:
    bad_second = {
        "workflow": wf.SCHEMA,
        "variants": {"retrieve": ["keyword", {"variant": "bm25", "params": {"k": "many"}}]},
        "cases": CASES,
    }
    assert error_of(bad_second).startswith("variants.retrieve[1].params.k")
    extra = {
        "workflow": wf.SCHEMA,
        "variants": {"retrieve": [{"variant": "bm25", "params": {"bogus": True}}]},
        "cases": CASES,
    }
    assert error_of(extra).startswith("variants.retrieve[0].params.bogus")


def test_unknown_node_and_workflow_reference() -> None:
    assert error_of(spec_dict(variants={"nope": ["x"]})).startswith("variants.nope:")
    assert error_of(spec_dict(workflow="tests.batch.workflows:missing")).startswith("workflow:")
    assert error_of(spec_dict(nondeterministic_nodes=["a", "zz"])).startswith(
        "nondeterministic_nodes[1]:"
    )
    assert error_of(spec_dict(environments={"a": {"nope": {"env_vars": {}}}})).startswith(
        "environments.a.nope"
    )


# --- ray presets ---------------------------------------------------------------------------------


def test_ray_presets_by_name() -> None:
    local = BatchSpec.parse(spec_dict(ray="local")).ray
    assert local.ray_address is None
    assert local.num_cpus_per_task == 1.0
    assert local.max_retries == 1

    testing = BatchSpec.parse(spec_dict(runner="ray", ray="testing")).ray
    assert testing.ray_address is None
    assert testing.num_cpus == 2
    assert testing.num_cpus_per_task == 0.5
    assert testing.max_pending_tasks == 8
    assert testing.max_retries == 0

    production = BatchSpec.parse(spec_dict(runner="ray", ray="production")).ray
    assert production.ray_address == "auto"
    assert production.memory_per_task_gb == 2.0
    assert production.max_pending_tasks == 128
    assert production.max_retries == 3


def test_ray_config_as_a_mapping_and_its_round_trip() -> None:
    spec = BatchSpec.parse(spec_dict(runner="ray", ray={"num_cpus": 2, "max_retries": 0}))
    assert spec.ray.num_cpus == 2
    assert spec.ray.max_retries == 0
    assert spec.ray.num_cpus_per_task == 1.0
    # what the flow sends to its tasks parses back to the same spec
    again = BatchSpec.parse(json.loads(json.dumps(spec.model_dump(mode="json"))))
    assert again == spec


def test_unknown_ray_preset() -> None:
    with pytest.raises(SpecError) as info:
        BatchSpec.parse(spec_dict(ray="huge"))
    (line,) = detail_lines(str(info.value))
    assert line.startswith("ray:")
    assert "unknown preset 'huge'" in line
    for name in ("local", "testing", "production"):
        assert name in line


# --- cases ---------------------------------------------------------------------------------------


def test_duplicate_case_ids(tmp_path: Path) -> None:
    spec = BatchSpec.parse(spec_dict(cases=[*CASES, {"id": "c1", "input": {"q": "again"}}]))
    with pytest.raises(SpecError, match=r"^cases: duplicate case ids \['c1'\]"):
        spec.load_cases()

    # duplicates across the inline cases and the cases file count too
    (tmp_path / "more.jsonl").write_text(json.dumps({"id": "c2", "input": {"q": "x"}}) + "\n")
    spec = BatchSpec.parse(spec_dict(cases_file="more.jsonl"))
    with pytest.raises(SpecError, match=r"duplicate case ids \['c2'\]"):
        spec.load_cases(tmp_path)


def test_cases_file_is_relative_to_the_spec_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_dir = tmp_path / "specs"
    (spec_dir / "data").mkdir(parents=True)
    lines = [
        json.dumps({"id": "f1", "input": {"q": "one"}, "expected": {"answer": "1"}}),
        "",
        json.dumps({"id": "f2", "input": {"q": "two"}}),
    ]
    (spec_dir / "data" / "cases.jsonl").write_text("\n".join(lines) + "\n")
    data = {"workflow": wf.LINEAR3, "cases_file": "data/cases.jsonl", "cases": [CASES[0]]}
    (spec_dir / "batch.yaml").write_text(yaml.safe_dump(data))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    spec, base_dir = load_spec(spec_dir / "batch.yaml")
    cases = spec.load_cases(base_dir)

    assert [c.id for c in cases] == ["c1", "f1", "f2"]  # inline first, then the file's
    assert cases[1].expected == {"answer": "1"}


def test_cases_file_errors(tmp_path: Path) -> None:
    spec = BatchSpec.parse({"workflow": wf.LINEAR3, "cases_file": "missing.jsonl"})
    with pytest.raises(SpecError, match=r"^cases_file: .*missing\.jsonl does not exist"):
        spec.load_cases(tmp_path)

    (tmp_path / "bad.jsonl").write_text('{"id": "a", "input": {}}\nnot json\n')
    spec = BatchSpec.parse({"workflow": wf.LINEAR3, "cases_file": "bad.jsonl"})
    with pytest.raises(SpecError, match=r"bad\.jsonl:2: not valid JSON"):
        spec.load_cases(tmp_path)

    (tmp_path / "invalid.jsonl").write_text('{"id": "a"}\n')
    spec = BatchSpec.parse({"workflow": wf.LINEAR3, "cases_file": "invalid.jsonl"})
    with pytest.raises(SpecError, match=r"cases_file:1\.input"):
        spec.load_cases(tmp_path)

    with pytest.raises(SpecError, match=r"^cases: give cases"):
        BatchSpec.parse({"workflow": wf.LINEAR3}).load_cases()


# --- combinations and baseline -------------------------------------------------------------------


def test_unknown_baseline() -> None:
    message = error_of(spec_dict(baseline="a=q,b=x"))
    assert message.startswith("baseline:"), message
    assert "'a=q,b=x'" in message
    assert "a=x,b=x" in message  # suggests real combination names


def test_baseline_must_be_a_combination_name() -> None:
    resolved = resolve(BatchSpec.parse(spec_dict(baseline="a=y,b=zed")))
    assert resolved.spec.baseline in {c.name for c in resolved.combinations}


def test_full_cartesian_product_in_workflow_node_order() -> None:
    resolved = resolve(BatchSpec.parse(spec_dict(variants={"b": ["x", "y"], "a": ["x", "z"]})))
    assert [c.name for c in resolved.combinations] == [
        "a=x,b=x",
        "a=x,b=y",
        "a=z,b=x",
        "a=z,b=y",
    ]
    assert resolved.combinations[2].selection == {"a": "z", "b": "x"}


def test_explicit_combinations_list() -> None:
    spec = BatchSpec.parse(
        spec_dict(
            variants={},
            combinations=[{"a": "y", "c": "z"}, {"b": "y"}, {"a": "z", "b": "z", "c": "x"}],
            repeats=2,
        )
    )
    resolved = resolve(spec)
    # nodes a combination leaves out run their default variant (x)
    assert [c.name for c in resolved.combinations] == [
        "a=y,b=x,c=z",
        "a=x,b=y,c=x",
        "a=z,b=z,c=x",
    ]
    assert len(resolved.leaves) == 6
    assert {leaf.key for leaf in resolved.leaves} == {
        f"{c.name}#{r}" for c in resolved.combinations for r in (0, 1)
    }


def test_explicit_combinations_errors() -> None:
    message = error_of(spec_dict(variants={}, combinations=[{"a": "x"}, {"b": "nope"}]))
    assert message.startswith("combinations[1].b:"), message
    message = error_of(spec_dict(variants={}, combinations=[{"a": "x"}, {"zz": "x"}]))
    assert message.startswith("combinations[1].zz:"), message
    message = error_of(spec_dict(variants={}, combinations=[]))
    assert message.startswith("combinations: empty list"), message
    message = error_of(spec_dict(variants={}, combinations=[{"a": "y"}, {"a": "y", "b": "x"}]))
    assert message.startswith("combinations:") and "twice" in message


def test_empty_variants_list_is_an_error() -> None:
    with pytest.raises(SpecError) as info:
        BatchSpec.parse(spec_dict(variants={"a": ["x"], "b": []}))
    (line,) = detail_lines(str(info.value))
    assert line.startswith("variants")
    assert "'b'" in line and "no variants" in line


def test_a_variant_listed_twice_is_an_error() -> None:
    with pytest.raises(SpecError) as info:
        BatchSpec.parse(spec_dict(variants={"a": ["x", "y", "x"]}))
    (line,) = detail_lines(str(info.value))
    assert line.startswith("variants") and "'a'" in line and "twice" in line


def test_no_variants_at_all_runs_the_defaults() -> None:
    resolved = resolve(BatchSpec.parse(spec_dict(variants={}, repeats=3)))
    assert [c.name for c in resolved.combinations] == ["default"]
    assert resolved.combinations[0].selection == {}
    assert [leaf.key for leaf in resolved.leaves] == ["default#0", "default#1", "default#2"]


# --- labels are display names only ---------------------------------------------------------------


def schema_spec(*choices: Any, **extra: Any) -> dict[str, Any]:
    return {"workflow": wf.SCHEMA, "variants": {"retrieve": list(choices)}, "cases": CASES, **extra}


def test_a_label_naming_another_variant_is_an_error() -> None:
    message = error_of(
        schema_spec("keyword", {"variant": "keyword", "params": {"k": 1}, "label": "bm25"})
    )
    assert message.startswith("variants.retrieve[1].label:"), message
    assert "'bm25'" in message and "variant" in message
    # even when that variant is not listed in the spec
    message = error_of(schema_spec({"variant": "keyword", "label": "bm25"}))
    assert message.startswith("variants.retrieve[0].label:"), message


def test_a_label_naming_its_own_variant_with_params_is_an_error() -> None:
    message = error_of(schema_spec({"variant": "keyword", "params": {"k": 1}, "label": "keyword"}))
    assert message.startswith("variants.retrieve[0].label:"), message
    # a label equal to its own variant without params changes nothing, so it is fine
    resolved = resolve(BatchSpec.parse(schema_spec({"variant": "keyword", "label": "keyword"})))
    assert [c.name for c in resolved.combinations] == ["retrieve=keyword"]
    assert resolved.combinations[0].selection == {"retrieve": "keyword"}


@pytest.mark.parametrize("label", ["k,1", "k=1", "a#b", "tab\there", "new\nline", "  "])
def test_labels_that_break_combination_names_are_errors(label: str) -> None:
    with pytest.raises(SpecError) as info:
        BatchSpec.parse(schema_spec({"variant": "keyword", "label": label}))
    (line,) = detail_lines(str(info.value))
    assert line.startswith("variants.retrieve[0].label:"), line


def test_params_given_with_a_label_are_kept() -> None:
    spec = schema_spec("keyword", {"variant": "keyword", "params": {"k": 1}, "label": "narrow"})
    resolved = resolve(BatchSpec.parse(spec))
    assert [c.name for c in resolved.combinations] == ["retrieve=keyword", "retrieve=narrow"]
    assert resolved.combinations[1].selection == {"retrieve": "keyword(k=1)"}
    assert resolved.workflow.nodes["retrieve"].variants["keyword(k=1)"].params == {"k": 1}


def test_the_same_variant_twice_under_two_labels_is_an_error() -> None:
    message = error_of(schema_spec("keyword", {"variant": "keyword", "label": "again"}))
    assert message.startswith("variants.retrieve[1]:"), message
    assert "twice" in message


def test_labels_work_in_baseline_combinations_and_environments() -> None:
    spec = schema_spec(
        "keyword",
        {"variant": "bm25", "params": {"k": 1}, "label": "narrow"},
        baseline="retrieve=narrow",
        environments={"retrieve": {"narrow": {"env_vars": {"X": "1"}}}},
        runner="ray",  # the threadpool runner refuses environments
    )
    resolved = resolve(BatchSpec.parse(spec))
    assert resolved.spec.baseline == "retrieve=narrow"
    envs = {leaf.combination.name: resolved.leaf_envs[leaf.key] for leaf in resolved.leaves}
    assert envs == {"retrieve=keyword": None, "retrieve=narrow": {"env_vars": {"X": "1"}}}
    spec["combinations"] = [{"retrieve": "narrow"}, {"retrieve": "bm25(k=1)"}]
    del spec["baseline"]
    message = error_of(spec)
    assert message.startswith("combinations:") and "twice" in message
    spec["combinations"] = [{"retrieve": "narrow"}, {"retrieve": "bm25"}]
    resolved = resolve(BatchSpec.parse(spec))
    assert [(c.name, c.selection) for c in resolved.combinations] == [
        ("retrieve=narrow", {"retrieve": "bm25(k=1)"}),
        ("retrieve=bm25", {"retrieve": "bm25"}),
    ]


def test_a_labelled_batch_stores_the_variant_that_really_ran(tmp_path: Path) -> None:
    """Results, executions and checkpoints name the real variant and params, never the label."""
    from wtb_domain import sql_app
    from wtb_domain.batch.service import BatchService

    app = sql_app(f"sqlite:///{tmp_path / 'wtb.db'}", audit=False)
    service = BatchService(app)
    spec = BatchSpec.parse(
        {
            "workflow": wf.LINEAR3,
            "batch_id": "labelled",
            "variants": {"a": ["x", {"variant": "x", "params": {"tag": "y"}, "label": "wide"}]},
            "cases": [CASES[0]],
            "evaluators": [{"type": "exact_match"}],
        }
    )
    prepared = service.prepare(spec)
    for group in prepared.groups:
        service.run_group(prepared.payload, group.case_id, list(group.leaf_keys))
    with app.uow() as uow:
        results = {r.combination_name: r for r in uow.results.for_batch("labelled")}

    assert set(results) == {"a=x", "a=wide"}  # the label is the display name
    wide = results["a=wide"]
    assert wide.variant_config == {"a": 'x(tag="y")'}
    # the node saw the label's params: a ran with tag y
    assert app.controller.state(wide.execution_id)["answer"] == "one|a:y-b:x-c:x"
    assert app.controller.get(wide.execution_id).variants == {"a": 'x(tag="y")'}
    variants_run = {
        (cp.node, cp.variant)
        for r in results.values()
        for cp in app.controller.history(r.execution_id)
        if cp.node is not None
    }
    assert ("a", 'x(tag="y")') in variants_run
    assert not any("wide" in str(v) for _, v in variants_run)
    assert results["a=x"].variant_config == {"a": "x"}
    assert app.database is not None
    app.database.dispose()


# --- secrets stay out of names -------------------------------------------------------------------


def test_secret_params_never_show_their_value_in_names() -> None:
    spec = spec_dict(variants={"b": [{"variant": "x", "params": {"api_key": "sk-live-1", "n": 2}}]})
    resolved = resolve(BatchSpec.parse(spec))
    (combo,) = resolved.combinations
    assert combo.name == "b=x(api_key=***,n=2)"
    assert combo.selection == {"b": "x(api_key=***,n=2)"}
    # the node still gets the real value
    assert resolved.workflow.nodes["b"].variants["x(api_key=***,n=2)"].params["api_key"] == (
        "sk-live-1"
    )
    nested = spec_dict(variants={"b": [{"variant": "x", "params": {"cfg": {"token": "t0p"}}}]})
    assert "t0p" not in resolve(BatchSpec.parse(nested)).combinations[0].name


def test_choices_that_differ_only_in_secret_params_need_labels() -> None:
    two = [
        {"variant": "x", "params": {"api_key": "sk-a"}},
        {"variant": "x", "params": {"api_key": "sk-b"}},
    ]
    message = error_of(spec_dict(variants={"b": two}))
    (line,) = detail_lines(message)
    assert line.startswith("variants:") and "'b'" in line and "[0] and [1]" in line, line
    assert "secret" in message and "label" in message
    assert "sk-a" not in message and "sk-b" not in message
    two[0]["label"] = "prod"
    two[1]["label"] = "staging"
    resolved = resolve(BatchSpec.parse(spec_dict(variants={"b": two})))
    assert [(c.name, c.selection["b"]) for c in resolved.combinations] == [
        ("b=prod", "x(api_key=***)~prod"),
        ("b=staging", "x(api_key=***)~staging"),
    ]
    variants = resolved.workflow.nodes["b"].variants
    assert variants["x(api_key=***)~staging"].params["api_key"] == "sk-b"


def test_database_url_must_parse_and_its_error_shows_no_password() -> None:
    with pytest.raises(SpecError) as info:
        BatchSpec.parse(spec_dict(database_url="::not-a-url:hunter2"))
    (line,) = detail_lines(str(info.value))
    assert line.startswith("database_url:"), line
    assert "hunter2" not in line
    assert BatchSpec.parse(spec_dict(database_url="sqlite:///x.db")).database_url


@pytest.mark.parametrize(
    ("fields", "uses"),
    [
        ({}, False),  # linear3 opts no node into the cache
        ({"cache": {"nodes": ["a"]}}, True),
        ({"cache": {"enabled": False, "nodes": ["a"]}}, False),
        ({"workflow": "tests.recording.workflows:workflow"}, True),  # retrieve: cache=True
        ({"workflow": "tests.recording.workflows:workflow", "cache": False}, False),
    ],
)
def test_a_batch_uses_a_cache_when_a_node_is_cached(fields: dict[str, Any], uses: bool) -> None:
    data = {**spec_dict(), **fields}
    if "workflow" in fields:
        data["variants"] = {}
    assert resolve(BatchSpec.parse(data)).uses_cache is uses


@pytest.mark.parametrize(
    ("env", "field"),
    [({"env_vars": {"X": "1"}}, "env_vars"), ({"pip": ["requests"]}, "pip")],
)
def test_environments_on_the_threadpool_runner_are_refused(env: dict[str, Any], field: str) -> None:
    """ThreadPool runs every variant in this process: it cannot apply a variant's env vars
    (os.environ is shared by concurrent batches) or packages, and never ignores them."""
    data = spec_dict(environments={"a": {"y": env}})
    with pytest.raises(SpecError) as info:
        resolve(BatchSpec.parse(data))
    message = str(info.value)
    assert message.startswith(f"environments.a.y.{field}:"), message
    assert "runner: ray" in message and "\n" not in message
    ray = resolve(BatchSpec.parse({**data, "runner": "ray"}))
    assert {leaf.combination.name: ray.leaf_envs[leaf.key] for leaf in ray.leaves}["a=y,b=x"] == env
    resolve(BatchSpec.parse(spec_dict(environments={"a": {"y": {"env_vars": {}}}})))  # empty
