"""The batch spec (pydantic v2): what to run, over which cases, on which runner.

Load one from YAML/JSON with :func:`load_spec` or build it in Python. Every error names the
field path, e.g. ``variants.retrieve[2].params.k: Input should be greater than 0``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from wtb_domain.batch.calls_spec import CacheSpec, LlmSpec
from wtb_domain.errors import SpecError
from wtb_domain.inputs import check_json, load_json, load_yaml, read_text
from wtb_domain.redaction import MASK, looks_secret, redact
from wtb_domain.regression.policy import RegressionPolicy


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("variants", "retrieve", 2, "params", "k")`` -> ``variants.retrieve[2].params.k``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in str(part):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def spec_error(exc: ValidationError, prefix: tuple[int | str, ...] = ()) -> SpecError:
    lines = [
        f"{field_path(prefix + tuple(e['loc'])) or '<spec>'}: {e['msg']}" for e in exc.errors()
    ]
    return SpecError("invalid batch spec: " + " | ".join(lines))


MAX_NAME = 255
"""Longest name, label, case id or variant name (PostgreSQL columns are VARCHAR(255))."""
MAX_REF = 512
"""Longest workflow reference (VARCHAR(512))."""
MAX_COMBINATION = 512
"""Longest combination name, ``node=variant,...`` (VARCHAR(512))."""

LABEL_FORBIDDEN = re.compile(r"[,=#\x00-\x1f\x7f]")
"""Characters a label may not hold: they break ``node=variant,...`` names and leaf keys."""


class VariantChoice(BaseModel):
    """One variant to try for a node: an existing variant, optionally with other params.

    ``label`` is a display name only (matrix rows, combination names, ``baseline:``); what runs
    and what executions, checkpoints and results store is :attr:`key`: the variant's own name,
    or an ad-hoc variant named after the variant and its params, e.g. ``keyword(k=1)``.
    """

    model_config = ConfigDict(extra="forbid")
    variant: StrictStr = Field(min_length=1, max_length=MAX_NAME)
    params: dict[str, Any] | None = None
    label: StrictStr | None = Field(None, max_length=MAX_NAME)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"variant": value} if isinstance(value, str) else value

    @field_validator("label")
    @classmethod
    def _plain_label(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("a label must not be empty; remove it or name the choice")
        bad = LABEL_FORBIDDEN.search(value)
        if bad:
            raise ValueError(
                f"a label must not contain {bad.group()!r} (',', '=', '#' and control "
                "characters break combination names like node=variant,...); rename it"
            )
        return value

    @property
    def key(self) -> str:
        """The variant that really runs: ``variant``, or ``variant(k=v,...)`` with params.

        A param whose key looks secret never shows its value: ``b(api_key=***)``.
        """
        if self.params:
            args = ",".join(
                f"{k}={MASK if looks_secret(k) else json.dumps(redact(v), ensure_ascii=False)}"
                for k, v in sorted(self.params.items())
            )
            key = f"{self.variant}({args})"
            if len(key) > MAX_NAME:  # long params: a readable prefix and a digest of them all
                digest = hashlib.blake2b(key.encode(), digest_size=6).hexdigest()
                key = f"{key[: MAX_NAME - 16]}...~{digest}"
            return key
        return self.variant

    @property
    def name(self) -> str:
        """The display name: the label, else :attr:`key`."""
        return self.label or self.key


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: StrictStr = Field(min_length=1, max_length=MAX_NAME)
    input: dict[str, Any]
    expected: dict[str, Any] | None = None


class SecretRef(BaseModel):
    """An env var value read from a Prefect Secret block on the worker: ``{secret: NAME}``."""

    model_config = ConfigDict(extra="forbid")
    secret: StrictStr = Field(min_length=1)


class EnvRef(BaseModel):
    """An env var value read from the worker's own environment: ``{env: NAME}``."""

    model_config = ConfigDict(extra="forbid")
    env: StrictStr = Field(min_length=1)


class Environment(BaseModel):
    """Where one variant runs on Ray: extra pip packages, env vars, other ``runtime_env`` keys."""

    model_config = ConfigDict(extra="allow")
    pip: list[StrictStr] | None = Field(None, min_length=1)
    env_vars: dict[StrictStr, StrictStr | SecretRef | EnvRef] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_empty_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key in ("pip", "env_vars"):
                if key in value and value[key] is None:
                    raise ValueError(
                        f"{key}: is empty; list {'packages' if key == 'pip' else 'variables'} "
                        f"under it or remove the key"
                    )
        return value

    @field_validator("pip")
    @classmethod
    def _named_packages(cls, value: list[str] | None) -> list[str] | None:
        for package in value or []:
            if not package.strip():
                raise ValueError("a package name is empty; remove it")
        return value

    def runtime_env(self) -> dict[str, Any]:
        """The plain mapping the environment provider merges."""
        return self.model_dump(mode="json", exclude_none=True)


class RayConfig(BaseModel):
    """Where and how variant tasks run on Ray (the seed's RayConfig, with its presets)."""

    model_config = ConfigDict(extra="forbid")
    ray_address: str | None = Field(None, description="None starts a local Ray per flow run")
    num_cpus: StrictInt | None = Field(None, gt=0, description="CPUs of a local Ray")
    num_cpus_per_task: StrictFloat = Field(1.0, gt=0)
    memory_per_task_gb: StrictFloat | None = Field(None, gt=0)
    max_pending_tasks: StrictInt = Field(100, gt=0)
    max_retries: StrictInt = Field(3, ge=0)
    runtime_env: dict[str, Any] | None = None

    @classmethod
    def local(cls) -> RayConfig:
        return cls(num_cpus_per_task=1.0, max_retries=1)

    @classmethod
    def testing(cls) -> RayConfig:
        return cls(num_cpus=2, num_cpus_per_task=0.5, max_pending_tasks=8, max_retries=0)

    @classmethod
    def production(cls, ray_address: str = "auto", num_workers: int = 64) -> RayConfig:
        return cls(
            ray_address=ray_address,
            num_cpus_per_task=1.0,
            memory_per_task_gb=2.0,
            max_pending_tasks=num_workers * 2,
            max_retries=3,
        )


PRESETS = {
    "local": RayConfig.local,
    "testing": RayConfig.testing,
    "production": RayConfig.production,
}


class BatchSpec(BaseModel):
    """A batch test: every variant combination x case x repeat of one workflow."""

    model_config = ConfigDict(extra="forbid")
    workflow: StrictStr = Field(
        max_length=MAX_REF, description="Workflow reference, package.module:attr"
    )
    batch_id: StrictStr | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    name: StrictStr | None = Field(None, max_length=MAX_NAME)
    variants: dict[str, list[VariantChoice]] = Field(default_factory=dict)
    combinations: list[dict[str, str]] | None = None
    cases: list[Case] | None = None
    cases_file: str | None = None
    repeats: StrictInt = Field(1, ge=1, le=1000)
    nondeterministic_nodes: list[str] = Field(default_factory=list)
    evaluators: list[dict[str, Any]] | None = None
    pass_threshold: StrictFloat = Field(0.5, ge=0, le=1)
    baseline: StrictStr | None = Field(None, max_length=MAX_COMBINATION)
    runner: Literal["threadpool", "ray"] = "threadpool"
    max_workers: StrictInt = Field(4, ge=1, le=1024)
    ray: RayConfig = Field(default_factory=RayConfig.local)
    environments: dict[str, dict[str, Environment]] = Field(default_factory=dict)
    database_url: StrictStr | None = None
    # A Prefect Secret block holding the database password (workers that have neither
    # WTB_DATABASE_URL with the password nor PGPASSWORD/.pgpass read it there).
    database_password_secret: StrictStr | None = Field(None, max_length=MAX_NAME)
    prefix_sharing: StrictBool = True
    fail_on_error: StrictBool = False
    regression: RegressionPolicy = Field(default_factory=RegressionPolicy)
    llm: LlmSpec = Field(default_factory=LlmSpec)
    cache: CacheSpec = Field(default_factory=CacheSpec)

    @field_validator("ray", mode="before")
    @classmethod
    def _preset(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in PRESETS:
                raise ValueError(f"unknown preset {value!r}; use one of {sorted(PRESETS)}")
            return PRESETS[value]()
        return value

    @field_serializer("environments")
    def _environments_without_nulls(
        self, value: dict[str, dict[str, Environment]]
    ) -> dict[str, dict[str, dict[str, Any]]]:
        """Dump only what was given, so the dump parses back (``pip: null`` is refused)."""
        return {node: {v: env.runtime_env() for v, env in by.items()} for node, by in value.items()}

    @field_validator("database_url")
    @classmethod
    def _parsable_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(value)
        except (ArgumentError, ValueError, TypeError):
            raise ValueError(
                "not a database URL; use e.g. postgresql://user@host/db or sqlite:///wtb.db"
            ) from None
        return value

    @field_validator("variants")
    @classmethod
    def _non_empty(cls, value: dict[str, list[VariantChoice]]) -> dict[str, list[VariantChoice]]:
        for node, choices in value.items():
            if not choices:
                raise ValueError(f"node {node!r} lists no variants; remove it or add some")
            names = [c.name for c in choices]
            for i, choice in enumerate(choices):
                j = names.index(choice.name)
                if j == i:
                    continue
                if (choices[j].params or {}) != (choice.params or {}):
                    raise ValueError(
                        f"node {node!r}: choices [{j}] and [{i}] ({choice.name!r}) differ only "
                        "in secret params, whose values never appear in names; give each a label"
                    )
                raise ValueError(f"node {node!r} lists a variant twice: {names}")
        return value

    @classmethod
    def parse(cls, data: Any) -> BatchSpec:
        """Validate ``data`` (JSON-like); SpecError naming every bad field path, on one line."""
        check_json(data, "spec")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise spec_error(exc) from None

    def load_cases(self, base_dir: Path | None = None) -> list[Case]:
        """Inline cases, then those of ``cases_file`` (relative to ``base_dir``)."""
        if not self.cases and not self.cases_file:
            raise SpecError("cases: give cases (inline) or cases_file (a JSONL file)")
        cases = list(self.cases or [])
        if self.cases_file:
            cases.extend(read_cases(self.cases_file, base_dir))
        # secrets-specref: linear (list.count per id was quadratic: minutes at 100,000 cases)
        dupes = sorted(i for i, n in Counter(c.id for c in cases).items() if n > 1)
        if dupes:
            raise SpecError(f"cases: duplicate case ids {dupes[:5]}; case ids must be unique")
        return cases


def read_cases(path: str, base_dir: Path | None = None) -> list[Case]:
    """The cases of a JSONL file (one ``{"id", "input", "expected"}`` object per line)."""
    file = Path(path)
    if not file.is_absolute() and base_dir is not None:
        file = base_dir / file
    text = read_text(file, "cases_file:")
    cases = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        data = load_json(line, f"cases_file {file}:{n}")
        try:
            cases.append(Case.model_validate(data))
        except ValidationError as exc:
            raise spec_error(exc, (f"cases_file:{n}",)) from None
    return cases


def load_spec(path: str | Path) -> tuple[BatchSpec, Path]:
    """Read a YAML or JSON spec file; returns the spec and its directory (for cases_file).

    ``.json`` files are read as JSON, others as YAML restricted to JSON types (no anchors,
    aliases, duplicate keys, dates or tags); see :mod:`wtb_domain.inputs`.
    """
    file = Path(path)
    text = read_text(file, "spec file")
    source = f"spec file {file}"
    data = load_json(text, source) if file.suffix.lower() == ".json" else load_yaml(text, source)
    if not isinstance(data, dict):
        raise SpecError(f"spec file {file} must hold a mapping (workflow:, variants:, cases: ...)")
    spec, base_dir = BatchSpec.parse(data), file.parent.resolve()
    if spec.llm.recordings is not None:
        from wtb_domain.batch.calls_spec import resolve_recordings

        spec = spec.model_copy(update={"llm": resolve_recordings(spec.llm, base_dir)})
    return spec, base_dir
