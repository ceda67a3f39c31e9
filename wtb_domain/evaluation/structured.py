"""Structured output: required JSON keys and a small JSON Schema subset."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from wtb_domain.errors import SpecError
from wtb_domain.evaluation.base import DEFAULT_FIELD, RunInfo, check_field, lookup, output_value

_JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")
_SCHEMA_KEYWORDS = frozenset(
    {"type", "required", "properties", "items", "enum", "additionalProperties"}
    | {"title", "description", "$schema", "$id", "default", "examples"}
)


def _as_json(value: Any, parse: bool) -> tuple[bool, Any]:
    if not parse or not isinstance(value, str):
        return True, value
    try:
        return True, json.loads(value)
    except ValueError:
        return False, None


@dataclass(frozen=True)
class JsonKeys:
    """Fraction of ``keys`` (dotted paths) present in the output field's object.

    With ``parse_json`` (default), a string field is parsed as JSON first; invalid JSON or a
    non-object scores 0.0.
    """

    keys: tuple[str, ...]
    field: str = DEFAULT_FIELD
    parse_json: bool = True
    name: str = "json_keys"
    runs_user_code: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_field(self.field)
        keys = tuple(self.keys) if isinstance(self.keys, list | tuple) else ()
        if not keys or any(not isinstance(key, str) or not key for key in keys):
            raise SpecError(f"keys: expected a non-empty list of key names, got {self.keys!r}")
        object.__setattr__(self, "keys", keys)

    def evaluate(
        self, output: Mapping[str, Any], expected: Mapping[str, Any] | None, run: RunInfo
    ) -> float:
        """Return the fraction of required keys present."""
        found, actual = output_value(output, run, self.field)
        ok, obj = _as_json(actual, self.parse_json)
        if not found or not ok or not isinstance(obj, Mapping):
            return 0.0
        return sum(lookup(obj, key)[0] for key in self.keys) / len(self.keys)


def check_schema(schema: Any, path: str = "schema") -> None:
    """Check that ``schema`` uses only the supported JSON Schema subset.

    Supported: ``type`` (a name or list of names), ``required``, ``properties``, ``items``,
    ``enum``, ``additionalProperties`` (boolean), plus annotations such as ``description``.

    Raises:
        SpecError: Naming the offending path inside the schema.
    """
    if not isinstance(schema, Mapping):
        raise SpecError(f"{path}: expected a mapping (a JSON schema object), got {schema!r}")
    unknown = sorted(set(schema) - _SCHEMA_KEYWORDS)
    if unknown:
        raise SpecError(
            f"{path}.{unknown[0]}: unsupported schema keyword; supported: "
            "type, required, properties, items, enum, additionalProperties"
        )
    _check_schema_type(schema.get("type"), f"{path}.type")
    _check_schema_lists(schema, path)
    for key, sub in _schema_mapping(schema, "properties", path).items():
        check_schema(sub, f"{path}.properties.{key}")
    if "items" in schema:
        check_schema(schema["items"], f"{path}.items")


def _check_schema_type(types: Any, path: str) -> None:
    if types is None:
        return
    names = [types] if isinstance(types, str) else types
    if not isinstance(names, list) or not names or any(t not in _JSON_TYPES for t in names):
        raise SpecError(f"{path}: unknown type {types!r}; use one of {', '.join(_JSON_TYPES)}")


def _check_schema_lists(schema: Mapping[str, Any], path: str) -> None:
    required = schema.get("required", [])
    if not isinstance(required, list) or any(not isinstance(key, str) for key in required):
        raise SpecError(f"{path}.required: expected a list of property names, got {required!r}")
    if "enum" in schema and not isinstance(schema["enum"], list):
        raise SpecError(f"{path}.enum: expected a list of allowed values")
    if not isinstance(schema.get("additionalProperties", True), bool):
        raise SpecError(f"{path}.additionalProperties: only true/false is supported")


def _schema_mapping(schema: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = schema.get(key, {})
    if not isinstance(value, Mapping):
        raise SpecError(f"{path}.{key}: expected a mapping of property name to schema")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, Mapping) else "array"


def _type_matches(value: Any, types: Any) -> bool:
    actual = _json_type(value)
    names = [types] if isinstance(types, str) else list(types)
    integral = actual == "number" and float(value).is_integer()
    return (
        actual in names
        or (actual == "integer" and "number" in names)
        or (integral and "integer" in names)
    )


def schema_errors(value: Any, schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """Validate ``value`` against a schema accepted by :func:`check_schema`.

    Args:
        value: The JSON-like value to check.
        schema: The schema.
        path: Where ``value`` sits, used in the messages.

    Returns:
        Human-readable problems; empty when the value conforms.
    """
    if "type" in schema and not _type_matches(value, schema["type"]):
        return [f"{path}: expected {schema['type']}, got {_json_type(value)}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']!r}")
    if isinstance(value, Mapping):
        errors.extend(_object_errors(value, schema, path))
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors.extend(schema_errors(item, schema["items"], f"{path}[{index}]"))
    return errors


def _object_errors(value: Mapping[str, Any], schema: Mapping[str, Any], path: str) -> list[str]:
    properties = schema.get("properties", {})
    errors = [f"{path}: missing {key!r}" for key in schema.get("required", []) if key not in value]
    for key, sub in properties.items():
        if key in value:
            errors.extend(schema_errors(value[key], sub, f"{path}.{key}"))
    if schema.get("additionalProperties", True) is False:
        errors.extend(f"{path}: unexpected {key!r}" for key in value if key not in properties)
    return errors


@dataclass(frozen=True)
class JsonSchema:
    """1.0 when the output field conforms to ``schema`` (a small JSON Schema subset), else 0.0.

    See :func:`check_schema` for the supported keywords. With ``parse_json`` (default), a string
    field is parsed as JSON first; set it to false to validate a plain string.
    """

    schema: Mapping[str, Any]
    field: str = DEFAULT_FIELD
    parse_json: bool = True
    name: str = "json_schema"
    runs_user_code: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_field(self.field)
        check_schema(self.schema)

    def evaluate(
        self, output: Mapping[str, Any], expected: Mapping[str, Any] | None, run: RunInfo
    ) -> float:
        """Score 1.0 when the value conforms, else 0.0."""
        found, actual = output_value(output, run, self.field)
        ok, value = _as_json(actual, self.parse_json)
        if not found or not ok:
            return 0.0
        return float(not schema_errors(value, self.schema))
