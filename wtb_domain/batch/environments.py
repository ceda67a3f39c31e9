"""Environment providers: where a variant's code runs (the seed's IEnvironmentProvider)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from wtb_domain.errors import SpecError
from wtb_domain.redaction import MASK, is_reference


class EnvironmentProvider(Protocol):
    def runtime_env(self, variant_envs: list[Mapping[str, Any]]) -> dict[str, Any] | None:
        """The environment for a leaf whose variants ask for ``variant_envs``."""
        ...


class InProcessEnvironmentProvider:
    """No isolation: variants run in the worker's own interpreter (dev, ThreadPool)."""

    def runtime_env(self, variant_envs: list[Mapping[str, Any]]) -> dict[str, Any] | None:
        return None


class RayEnvironmentProvider:
    """Merges a base Ray ``runtime_env`` with each variant's pip packages and env vars."""

    def __init__(self, base_env: Mapping[str, Any] | None = None) -> None:
        self.base_env = dict(base_env or {})

    def runtime_env(self, variant_envs: list[Mapping[str, Any]]) -> dict[str, Any] | None:
        merged: dict[str, Any] = {k: v for k, v in self.base_env.items()}
        pip = list(self.base_env.get("pip", []))
        env_vars = dict(self.base_env.get("env_vars", {}))
        for env in variant_envs:
            for package in env.get("pip", []):
                if package not in pip:
                    pip.append(package)
            env_vars.update(env.get("env_vars", {}))
            for key, value in env.items():
                if key not in ("pip", "env_vars"):
                    merged[key] = value
        if pip:
            merged["pip"] = pip
        if env_vars:
            merged["env_vars"] = env_vars
        return merged or None


def resolve_env_value(
    name: str,
    value: Any,
    secret_loader: Callable[[str], str] | None,
    environ: Mapping[str, str],
) -> str:
    """One env var's value: a literal, ``{secret: NAME}`` or ``{env: NAME}``."""
    if is_reference(value):
        kind, ref = next(iter(value.items()))
        if kind == "env":
            if ref not in environ:
                raise SpecError(
                    f"env_vars.{name}: {{env: {ref}}} but {ref} is not set on this worker; "
                    "export it where the flow runs"
                )
            return environ[ref]
        if secret_loader is None:
            raise SpecError(f"env_vars.{name}: {{secret: {ref}}} needs Prefect Secret blocks")
        return secret_loader(ref)
    if isinstance(value, dict | list):
        raise SpecError(
            f"env_vars.{name}: give a string, {{secret: NAME}} or {{env: NAME}}, not {value!r}"
        )
    if value == MASK:
        raise SpecError(
            f"env_vars.{name}: its literal secret is never stored; rerun the batch from its "
            "spec file, or give it as {secret: NAME} or {env: NAME}"
        )
    return str(value)


def resolve_runtime_env(
    runtime_env: Mapping[str, Any] | None,
    secret_loader: Callable[[str], str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
    """The runtime_env with its env_vars references resolved (call it as late as possible,
    where the environment is handed to the worker: the values exist only from here on)."""
    if runtime_env is None:
        return None
    env = os.environ if environ is None else environ
    out = dict(runtime_env)
    if "env_vars" in out:
        out["env_vars"] = {
            name: resolve_env_value(name, value, secret_loader, env)
            for name, value in dict(out["env_vars"]).items()
        }
    return out
