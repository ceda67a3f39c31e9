"""Reading user input strictly: files, JSON and YAML text -> JSON values, or a one-line SpecError.

What every reader refuses (each with a message naming the source, the line where known, and
the fix), because it would otherwise crash later with a traceback or store something else
than the user wrote:

- files that are missing, directories, or not UTF-8;
- YAML anchors and aliases (``&a`` / ``*a``: alias bombs), duplicate keys, non-string keys, and
  every YAML type that is not JSON (dates, ``!!binary``, ``!!set``, python tags, ...);
- nesting deeper than :data:`MAX_DEPTH`, integers longer than :data:`MAX_INT_DIGITS` digits,
  NaN and infinities, lone surrogates (``"\\ud800"``) and NUL characters (PostgreSQL's JSONB
  rejects them).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, ClassVar

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent, CollectionStartEvent, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode

from wtb_domain.errors import SpecError

MAX_DEPTH = 100
"""Deepest nesting of lists/mappings accepted in any input."""
MAX_INT_DIGITS = 100
"""Longest integer (in digits) accepted in any input."""

_INT_TOO_LONG = re.compile(rf"[-+]?\d{{{MAX_INT_DIGITS + 1},}}")


def read_text(path: str | Path, what: str) -> str:
    """The UTF-8 text of ``path``; errors start with ``what`` (``spec file``, ``--input: file``)."""
    file = Path(path)
    try:
        if file.is_dir():
            raise SpecError(f"{what} {file} is a directory; give the path of a file")
        if not file.is_file():
            raise SpecError(f"{what} {file} does not exist")
        data = file.read_bytes()
    except OSError as exc:
        raise SpecError(f"{what} {file} cannot be read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SpecError(
            f"{what} {file}:{line} is not UTF-8 (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); save the file as UTF-8"
        ) from None


# --- JSON ---------------------------------------------------------------------------------------


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def load_json(text: str, source: str) -> Any:
    """Parse JSON text strictly; ``source`` names it in errors (``--input``, ``cases.jsonl:3``)."""
    try:
        value = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
            object_pairs_hook=_no_duplicates,
        )
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{source}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise SpecError(f"{source}: nested too deeply (at most {MAX_DEPTH} levels)") from None
    except ValueError as exc:
        raise SpecError(f"{source}: not valid JSON here ({exc})") from None
    check_json(value, source)
    return value


def check_json(value: Any, source: str) -> None:
    """Raise SpecError unless ``value`` is JSON that every store accepts (iterative, any size)."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        where = f"{source}{'' if not path else ' at ' + path}"
        if depth > MAX_DEPTH:
            raise SpecError(f"{source}: nested too deeply (at most {MAX_DEPTH} levels)")
        if isinstance(item, str):
            _check_str(item, where)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if item.bit_length() > MAX_INT_DIGITS * 3.33:
                raise SpecError(f"{where}: integer too long (at most {MAX_INT_DIGITS} digits)")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise SpecError(f"{where}: {item} is not a JSON number; use a finite number")
        elif isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise SpecError(f"{where}: key {key!r} is not a string; quote it")
                _check_str(key, f"{where} (a key)")
                stack.append((sub, _key_path(path, key), depth + 1))
        elif isinstance(item, list | tuple):
            for i, sub in enumerate(item):
                stack.append((sub, f"{path}[{i}]", depth + 1))
        else:
            raise SpecError(f"{where}: a {type(item).__name__} is not a JSON value")


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


def _key_path(path: str, key: str) -> str:
    """``path.key`` for a plain key; otherwise ``path["…"]`` (escaped, shortened), so a message
    naming the place stays one printable line whatever the key holds."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    shown = json.dumps(key[:60] + ("..." if len(key) > 60 else ""))
    return f"{path}[{shown}]"


def _str_problem(text: str) -> str | None:
    """What is wrong with ``text`` as stored JSON text, or None."""
    if "\x00" in text:
        return "text holds a NUL character (\\u0000); remove it"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return (
            "text holds a lone surrogate (like \\ud800), which is not Unicode text; fix the escape"
        )
    return None


def _check_str(text: str, where: str) -> None:
    problem = _str_problem(text)
    if problem is not None:
        raise SpecError(f"{where}: {problem}")


# --- YAML ---------------------------------------------------------------------------------------

_JSON_TAGS = {
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:map",
}


class _YamlInputError(Exception):
    """Carries a message and the node's position out of PyYAML's machinery."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def _line(node: Node | NodeEvent | None) -> int | None:
    mark = getattr(node, "start_mark", None)
    return None if mark is None else int(mark.line) + 1


class JsonYamlLoader(yaml.SafeLoader):
    """A SafeLoader that builds only JSON values: no aliases, no duplicate keys, no other types."""

    yaml_constructors: ClassVar[
        dict[Any, Any]
    ] = {}  # PyYAML's class-level registry: JSON types only

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        if self.check_event(AliasEvent):
            raise _YamlInputError(
                f"YAML aliases (*{event.anchor}) are not allowed; write the value out",
                _line(event),
            )
        if getattr(event, "anchor", None) is not None:
            raise _YamlInputError(
                f"YAML anchors (&{event.anchor}) are not allowed; write the value out",
                _line(event),
            )
        collection = isinstance(event, CollectionStartEvent)
        if collection:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise _YamlInputError(
                    f"nested too deeply (at most {MAX_DEPTH} levels)", _line(event)
                )
        try:
            return super().compose_node(parent, index)
        finally:
            if collection:
                self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        if node.tag not in _JSON_TAGS:
            raise _YamlInputError(_type_hint(node), _line(node))
        try:
            return super().construct_object(node, deep=deep)
        except _YamlInputError:
            raise
        except (ConstructorError, ValueError, KeyError, TypeError, OverflowError):
            raise _YamlInputError(
                f"{_show(node)} is not a valid {node.tag.rsplit(':', 1)[-1]}; fix or quote it",
                _line(node),
            ) from None

    def _construct_map(self, node: MappingNode) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise _YamlInputError(
                    f"key {_show(key_node)} is not a string (YAML reads it as "
                    f"{type(key).__name__}); quote it",
                    _line(key_node),
                )
            if key in out:
                raise _YamlInputError(
                    f"duplicate key {key!r}; each key may appear once", _line(key_node)
                )
            out[key] = self.construct_object(value_node, deep=True)
        return out

    def _construct_int(self, node: ScalarNode) -> int:
        if _INT_TOO_LONG.fullmatch(str(node.value).replace("_", "")):
            raise _YamlInputError(
                f"integer too long (at most {MAX_INT_DIGITS} digits)", _line(node)
            )
        return SafeConstructor.construct_yaml_int(self, node)

    def _construct_float(self, node: ScalarNode) -> float:
        value = SafeConstructor.construct_yaml_float(self, node)
        if not math.isfinite(value):
            raise _YamlInputError(
                f"{_show(node)} is not a JSON number; use a finite number", _line(node)
            )
        return float(value)

    def _construct_str(self, node: ScalarNode) -> str:
        value = str(self.construct_scalar(node))
        problem = _str_problem(value)
        if problem is not None:
            raise _YamlInputError(problem, _line(node))
        return value

    def _construct_bool(self, node: ScalarNode) -> bool:
        value = str(self.construct_scalar(node)).lower()
        if value not in self.bool_values:
            raise _YamlInputError(f"{_show(node)} is not a boolean; use true or false", _line(node))
        return bool(self.bool_values[value])


def _show(node: Node) -> str:
    value = node.value if isinstance(node, ScalarNode) else f"<{getattr(node, 'id', 'node')}>"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_hint(node: Node) -> str:
    tag = str(node.tag)
    if tag == "tag:yaml.org,2002:timestamp":
        return f'{_show(node)} is a YAML date; quote it ("{node.value}") to keep it as text'
    if tag == "tag:yaml.org,2002:merge":
        return "YAML merge keys (<<) are not allowed; write the keys out"
    short = tag.replace("tag:yaml.org,2002:", "!!")
    return f"YAML type {short} is not allowed; use JSON types only (quote text)"


JsonYamlLoader.add_constructor("tag:yaml.org,2002:null", SafeConstructor.construct_yaml_null)  # type: ignore[type-var]
JsonYamlLoader.add_constructor("tag:yaml.org,2002:bool", JsonYamlLoader._construct_bool)
JsonYamlLoader.add_constructor("tag:yaml.org,2002:int", JsonYamlLoader._construct_int)
JsonYamlLoader.add_constructor("tag:yaml.org,2002:float", JsonYamlLoader._construct_float)
JsonYamlLoader.add_constructor("tag:yaml.org,2002:str", JsonYamlLoader._construct_str)
JsonYamlLoader.add_constructor("tag:yaml.org,2002:seq", SafeConstructor.construct_sequence)  # type: ignore[type-var]
JsonYamlLoader.add_constructor("tag:yaml.org,2002:map", JsonYamlLoader._construct_map)


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML (or JSON) text into JSON values; SpecError naming ``source`` and the line."""
    loader: JsonYamlLoader | None = None
    try:
        loader = JsonYamlLoader(text)  # reads the text: may refuse characters already
        value = loader.get_single_data()
    except _YamlInputError as exc:
        at = f":{exc.line}" if exc.line else ""
        raise SpecError(f"{source}{at}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(exc.problem or exc.context or "syntax error").split())
        raise SpecError(f"{source}{at}: not valid YAML/JSON ({problem})") from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise SpecError(
            f"{source}:{line}: character #x{exc.character:04x} is not allowed in YAML; remove it "
            "(or write it as an escape in a double-quoted string)"
        ) from None
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise SpecError(f"{source}: not valid YAML/JSON ({problem})") from None
    except RecursionError:
        raise SpecError(f"{source}: nested too deeply (at most {MAX_DEPTH} levels)") from None
    finally:
        if loader is not None:
            loader.dispose()
    check_json(value, source)
    return value
