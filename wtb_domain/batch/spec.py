"""The batch spec (pydantic v2): what to run, over which cases, on which runner.

Load one from YAML/JSON with :func:`load_spec` or build it in Python. Every error names the
field path, e.g. ``variants.retrieve[2].params.k: Input should be greater than 0``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wtb_domain.errors import SpecError
from wtb_domain.redaction import looks_secret


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


class VariantChoice(BaseModel):
    """One variant to try for a node: an existing variant, optionally with other params."""

    model_config = ConfigDict(extra="forbid")
    variant: str
    params: dict[str, Any] | None = None
    label: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"variant": value} if isinstance(value, str) else value

    @property
    def name(self) -> str:
        """The name results use: the label, the variant, or variant plus its params."""
        if self.label:
            return self.label
        if self.params:
            # secrets-specref: a secret-looking param keeps its value out of the name
            args = ",".join(
                f"{k}={'***' if looks_secret(k) else json.dumps(v)}"
                for k, v in sorted(self.params.items())
            )
            return f"{self.variant}({args})"
        return self.variant


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    input: dict[str, Any]
    expected: dict[str, Any] | None = None


class RayConfig(BaseModel):
    """Where and how variant tasks run on Ray (the seed's RayConfig, with its presets)."""

    model_config = ConfigDict(extra="forbid")
    ray_address: str | None = Field(None, description="None starts a local Ray per flow run")
    num_cpus: int | None = Field(None, gt=0, description="CPUs of a local Ray")
    num_cpus_per_task: float = Field(1.0, gt=0)
    memory_per_task_gb: float | None = Field(None, gt=0)
    max_pending_tasks: int = Field(100, gt=0)
    max_retries: int = Field(3, ge=0)
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
    workflow: str = Field(description="Workflow reference, package.module:attr")
    batch_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    name: str | None = None
    variants: dict[str, list[VariantChoice]] = Field(default_factory=dict)
    combinations: list[dict[str, str]] | None = None
    cases: list[Case] | None = None
    cases_file: str | None = None
    repeats: int = Field(1, ge=1, le=1000)
    nondeterministic_nodes: list[str] = Field(default_factory=list)
    evaluators: list[dict[str, Any]] | None = None
    pass_threshold: float = Field(0.5, ge=0, le=1)
    baseline: str | None = None
    runner: Literal["threadpool", "ray"] = "threadpool"
    max_workers: int = Field(4, ge=1, le=1024)
    ray: RayConfig = Field(default_factory=RayConfig.local)
    environments: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    database_url: str | None = None
    # secrets-specref: a Prefect Secret block holding the database password (workers that
    # have neither WTB_DATABASE_URL with the password nor PGPASSWORD/.pgpass read it there)
    database_password_secret: str | None = None
    prefix_sharing: bool = True
    fail_on_error: bool = False

    @field_validator("ray", mode="before")
    @classmethod
    def _preset(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in PRESETS:
                raise ValueError(f"unknown preset {value!r}; use one of {sorted(PRESETS)}")
            return PRESETS[value]()
        return value

    @field_validator("variants")
    @classmethod
    def _non_empty(cls, value: dict[str, list[VariantChoice]]) -> dict[str, list[VariantChoice]]:
        for node, choices in value.items():
            if not choices:
                raise ValueError(f"node {node!r} lists no variants; remove it or add some")
            names = [c.name for c in choices]
            if len(set(names)) != len(names):
                raise ValueError(f"node {node!r} lists a variant twice: {names}")
        return value

    @classmethod
    def parse(cls, data: Any) -> BatchSpec:
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
    file = Path(path)
    if not file.is_absolute() and base_dir is not None:
        file = base_dir / file
    if not file.is_file():
        raise SpecError(f"cases_file: {file} does not exist")
    cases = []
    for n, line in enumerate(file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cases.append(Case.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise SpecError(f"cases_file {file}:{n}: not JSON ({exc.msg})") from None
        except ValidationError as exc:
            raise spec_error(exc, (f"cases_file:{n}",)) from None
    return cases


def load_spec(path: str | Path) -> tuple[BatchSpec, Path]:
    """Read a YAML or JSON spec file; returns the spec and its directory (for cases_file)."""
    file = Path(path)
    if not file.is_file():
        raise SpecError(f"spec file {file} does not exist")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"spec file {file} is not valid YAML/JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"spec file {file} must hold a mapping (workflow:, variants:, cases: ...)")
    return BatchSpec.parse(data), file.parent.resolve()
