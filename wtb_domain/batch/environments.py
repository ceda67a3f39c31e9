"""Environment providers: where a variant's code runs (the seed's IEnvironmentProvider)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


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
