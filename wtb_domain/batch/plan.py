"""Resolve a spec against its workflow and plan the batch as variant-tree tasks."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from wtb_domain.batch.environments import RayEnvironmentProvider
from wtb_domain.batch.spec import MAX_COMBINATION, BatchSpec, Case, VariantChoice, field_path
from wtb_domain.errors import SpecError, WtbError
from wtb_domain.evaluation import WeightedEvaluator, build_evaluators, default_qa_evaluators
from wtb_domain.workflow import NodeVariant, Workflow, load_workflow


@dataclass(frozen=True)
class Combination:
    """One choice of variant per varied node.

    ``name`` is for display and ``baseline:`` (it uses labels); ``variants`` maps node -> the
    workflow variant that runs (what executions, checkpoints and results store).
    """

    name: str
    variants: tuple[tuple[str, str], ...]

    @property
    def selection(self) -> dict[str, str]:
        return dict(self.variants)


@dataclass(frozen=True)
class Leaf:
    combination: Combination
    repeat: int

    @property
    def key(self) -> str:
        return f"{self.combination.name}#{self.repeat}"


@dataclass(frozen=True)
class TaskGroup:
    """The unit of work of one Prefect task: some leaves of one case, run as one tree."""

    case_id: str
    leaf_keys: tuple[str, ...]
    runtime_env: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        blob = json.dumps([self.case_id, self.leaf_keys, self.runtime_env], sort_keys=True)
        return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()


@dataclass
class ResolvedBatch:
    spec: BatchSpec
    workflow: Workflow
    combinations: list[Combination]
    evaluators: list[WeightedEvaluator]
    leaf_envs: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    @property
    def leaves(self) -> list[Leaf]:
        return list(self._leaf_index.values())

    @functools.cached_property
    def _leaf_index(self) -> dict[str, Leaf]:
        leaves = (Leaf(c, r) for c in self.combinations for r in range(self.spec.repeats))
        return {leaf.key: leaf for leaf in leaves}

    def leaf(self, key: str) -> Leaf:
        try:
            return self._leaf_index[key]
        except KeyError:
            raise SpecError(f"no combination/repeat {key!r} in this batch") from None

    @property
    def uses_cache(self) -> bool:
        """Whether any node of a run may be served from the node cache (it is on, and a node
        opts in with ``cache=True`` or is named in ``cache.nodes``)."""
        cache = self.spec.cache
        return cache.enabled and any(
            n.cache or n.name in cache.nodes for n in self.workflow.nodes.values()
        )

    @property
    def nondeterministic(self) -> set[str]:
        flagged = {n.name for n in self.workflow.nodes.values() if not n.deterministic}
        return flagged | set(self.spec.nondeterministic_nodes)


def resolve(spec: BatchSpec) -> ResolvedBatch:
    """Check the spec against its workflow; add ad-hoc variants; expand combinations."""
    try:
        base = load_workflow(spec.workflow)
    except WtbError as exc:
        raise SpecError(f"workflow: {exc}") from None
    extra, axes = _variant_axes(spec, base)
    workflow = base.with_variants(extra)
    for i, node in enumerate(spec.nondeterministic_nodes):
        _node_or_error(workflow, node, f"nondeterministic_nodes[{i}]")
    for i, node in enumerate(spec.cache.nodes):
        _node_or_error(workflow, node, f"cache.nodes[{i}]")
    combos = _combinations(spec, workflow, axes)
    if spec.baseline is not None and spec.baseline not in {c.name for c in combos}:
        names = ", ".join(c.name for c in combos[:5])
        raise SpecError(f"baseline: {spec.baseline!r} is not a combination; e.g. {names}")
    evaluators = (
        build_evaluators(spec.evaluators)
        if spec.evaluators is not None
        else default_qa_evaluators()
    )
    resolved = ResolvedBatch(spec, workflow, combos, evaluators)
    resolved.leaf_envs = _leaf_envs(spec, workflow, resolved.leaves, axes)
    return resolved


def _node_or_error(workflow: Workflow, node: str, path: str) -> None:
    if node not in workflow.nodes:
        raise SpecError(
            f"{path}: workflow {workflow.name!r} has no node {node!r}; "
            f"nodes: {', '.join(workflow.nodes)}"
        )


@dataclass
class Axis:
    """The choices of one varied node: the variants that run and their display names."""

    keys: list[str] = field(default_factory=list)
    """Workflow variant names, in the spec's order (ad-hoc ones like ``keyword(k=1)``)."""
    display: dict[str, str] = field(default_factory=dict)
    """Variant name -> display name (its label, or the variant name itself)."""

    def lookup(self, name: str) -> str | None:
        """The variant name a display name (label) or variant name refers to."""
        if name in self.display:
            return name
        return next((k for k, shown in self.display.items() if shown == name), None)


def _variant_axes(
    spec: BatchSpec, workflow: Workflow
) -> tuple[dict[str, dict[str, NodeVariant]], dict[str, Axis]]:
    """Ad-hoc variants to add and, per varied node, what runs and what it is called.

    A label is a display name only: it may not shadow another variant of the node (that
    would make results name a variant that did not run), and it never names what runs.
    """
    extra: dict[str, dict[str, NodeVariant]] = {}
    axes: dict[str, Axis] = {}
    for node_name, choices in spec.variants.items():
        _node_or_error(workflow, node_name, f"variants.{node_name}")
        node = workflow.nodes[node_name]
        axis = axes[node_name] = Axis()
        for i, choice in enumerate(choices):
            path = f"variants.{node_name}[{i}]"
            if choice.variant not in node.variants:
                known = ", ".join(node.variants)
                raise SpecError(
                    f"{path}.variant: node {node_name!r} has no variant {choice.variant!r}; "
                    f"known: {known}"
                )
            own_plain = choice.label == choice.variant and not choice.params
            if choice.label is not None and choice.label in node.variants and not own_plain:
                raise SpecError(
                    f"{path}.label: {choice.label!r} is the name of a variant of node "
                    f"{node_name!r}; results would name a variant that did not run. "
                    "Pick a label that is not a variant name"
                )
            base = node.variants[choice.variant]
            params = {**base.params, **(choice.params or {})}
            _check_params(node.param_schema, params, f"{path}.params")
            key = _run_name(node_name, choices, i)
            if key in axis.display:
                raise SpecError(
                    f"{path}: node {node_name!r} lists variant {key!r} twice (as "
                    f"{axis.display[key]!r} and {choice.name!r}); remove one"
                )
            if key != choice.variant:
                extra.setdefault(node_name, {})[key] = NodeVariant(key, base.fn, params)
            axis.keys.append(key)
            axis.display[key] = choice.name
    return extra, axes


def _run_name(node: str, choices: Sequence[VariantChoice], i: int) -> str:
    """The workflow variant name choice ``i`` runs as (what results and executions store).

    Secret params are masked in it, so choices that differ only in secret params would share
    a name: they must then have labels, and the name gets ``~label`` to tell them apart.
    """
    choice = choices[i]
    twins = [
        c
        for c in choices
        if c is not choice and c.key == choice.key and (c.params or {}) != (choice.params or {})
    ]
    if not twins:
        return choice.key
    if any(c.label is None for c in (choice, *twins)):
        raise SpecError(
            f"variants.{node}[{i}]: choices {choice.key!r} differ only in secret params, "
            "whose values never appear in names; give each of them a label"
        )
    return f"{choice.key}~{choice.label}"


def _check_params(schema: Any, params: Mapping[str, Any], path: str) -> None:
    if schema is None:
        return
    try:
        schema.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = f"{path}.{field_path(tuple(first['loc']))}"
        raise SpecError(f"{where}: {first['msg']}") from None


def combination_name(selection: Mapping[str, str], order: Sequence[str]) -> str:
    return ",".join(f"{node}={selection[node]}" for node in order) or "default"


def _combinations(spec: BatchSpec, workflow: Workflow, axes: dict[str, Axis]) -> list[Combination]:
    """Every combination to run; names use display names, variants the names that run."""
    if spec.combinations is None:
        order = [n for n in workflow.nodes if n in axes]
        product = itertools.product(*(axes[n].keys for n in order))
        selections = [dict(zip(order, values, strict=True)) for values in product]
    else:
        if not spec.combinations:
            raise SpecError("combinations: empty list; omit it for the full cartesian product")
        named = {n for c in spec.combinations for n in c}
        order = [n for n in workflow.nodes if n in named]
        selections = []
        for i, combo in enumerate(spec.combinations):
            chosen: dict[str, str] = {}
            for node, name in combo.items():
                _node_or_error(workflow, node, f"combinations[{i}].{node}")
                axis = axes.get(node)
                variant = axis.lookup(name) if axis is not None else None
                if variant is None and name in workflow.nodes[node].variants:
                    variant = name
                if variant is None:
                    raise SpecError(
                        f"combinations[{i}].{node}: no variant {name!r}; "
                        f"known: {', '.join(workflow.nodes[node].variants)}"
                    )
                chosen[node] = variant
            selections.append({n: chosen.get(n, workflow.nodes[n].default) for n in order})

    def shown(node: str, variant: str) -> str:
        axis = axes.get(node)
        return axis.display.get(variant, variant) if axis is not None else variant

    combos = [
        Combination(
            combination_name({n: shown(n, v) for n, v in s.items()}, order), tuple(s.items())
        )
        for s in selections
    ]
    names = [c.name for c in combos]
    if len(set(names)) != len(names):
        raise SpecError("combinations: the same combination is listed twice")
    too_long = next((n for n in names if len(n) > MAX_COMBINATION), None)
    if too_long is not None:
        where = "variants" if spec.combinations is None else "combinations"
        raise SpecError(
            f"{where}: combination name {too_long[:60]!r}... is {len(too_long)} characters, "
            f"more than the {MAX_COMBINATION} a result can store; give the choices short labels"
        )
    return combos


def _leaf_envs(
    spec: BatchSpec, workflow: Workflow, leaves: list[Leaf], axes: dict[str, Axis]
) -> dict[str, dict[str, Any] | None]:
    """Each leaf's runtime env; ``environments`` may name a variant or a choice's label."""
    envs_by_variant: dict[str, dict[str, dict[str, Any]]] = {}
    for node, by_variant in spec.environments.items():
        _node_or_error(workflow, node, f"environments.{node}")
        for name, env in by_variant.items():
            axis = axes.get(node)
            variant = axis.lookup(name) if axis is not None else None
            if variant is None and name in workflow.nodes[node].variants:
                variant = name
            if variant is None:
                raise SpecError(f"environments.{node}.{name}: no such variant")
            _refuse_in_process(spec, f"environments.{node}.{name}", env.runtime_env())
            envs_by_variant.setdefault(node, {})[variant] = env.runtime_env()
    provider = RayEnvironmentProvider(spec.ray.runtime_env)
    out: dict[str, dict[str, Any] | None] = {}
    for leaf in leaves:
        envs = [
            envs_by_variant.get(node, {}).get(variant, {})
            for node, variant in leaf.combination.variants
        ]
        out[leaf.key] = provider.runtime_env([e for e in envs if e])
    return out


def _refuse_in_process(spec: BatchSpec, path: str, env: Mapping[str, Any]) -> None:
    """ThreadPool runs every variant in this process: a variant's env vars cannot be applied
    (``os.environ`` is process-global, shared by concurrent batches and leaves) nor its
    packages installed, so they are refused rather than silently ignored."""
    given = [k for k, v in env.items() if v not in (None, {}, [])]
    if spec.runner != "threadpool" or not given:
        return
    key = given[0]
    raise SpecError(
        f"{path}.{key}: the threadpool runner runs every variant in this process and cannot "
        "give one its own environment (os.environ is shared by concurrent runs); use "
        "runner: ray (or --runner ray), or set it in the worker's environment and remove it"
    )


def plan_groups(resolved: ResolvedBatch, cases: Sequence[Case], workers: int) -> list[TaskGroup]:
    """Split each case's leaves into task groups.

    One task per case keeps the whole variant tree together (most sharing). With fewer cases
    than workers, each case is cut into about ``workers / cases`` slices of its leaves sorted
    by variant choice, cutting where the earliest varied node changes variant when possible,
    so each slice still shares the longest prefixes. Leaves that need different runtime
    environments never share a task.
    """
    per_case = max(1, -(-workers // max(1, len(cases))))
    by_env: dict[str, list[Leaf]] = {}
    for leaf in resolved.leaves:
        env = resolved.leaf_envs.get(leaf.key)
        by_env.setdefault(json.dumps(env, sort_keys=True), []).append(leaf)
    groups: list[TaskGroup] = []
    for case in cases:
        for env_key, env_leaves in by_env.items():
            env = json.loads(env_key)
            ordered = sorted(env_leaves, key=_order)
            for chunk in _slices(ordered, min(per_case, len(ordered))):
                groups.append(TaskGroup(case.id, tuple(lf.key for lf in chunk), env))
    return groups


def _order(leaf: Leaf) -> tuple[str, ...]:
    return (*(variant for _, variant in leaf.combination.variants), f"{leaf.repeat:09d}")


def _nearest(bounds: list[int], target: int) -> int:
    return min(bounds, key=lambda b: abs(b - target))


def _slices(ordered: list[Leaf], count: int) -> list[list[Leaf]]:
    """``count`` contiguous slices, cut at the shallowest variant boundaries available."""
    if count <= 1:
        return [ordered]
    depth_keys = [_order(leaf) for leaf in ordered]
    bounds: list[int] = []
    for depth in range(1, len(depth_keys[0]) + 1):
        bounds = [
            i for i in range(1, len(ordered)) if depth_keys[i][:depth] != depth_keys[i - 1][:depth]
        ]
        if len(bounds) >= count - 1:
            break
    ideal = [round(k * len(ordered) / count) for k in range(1, count)]
    cuts = sorted({_nearest(bounds, target) for target in ideal})
    edges = [0, *cuts, len(ordered)]
    return [ordered[a:b] for a, b in itertools.pairwise(edges) if b > a]
