"""Render streamgate/client/models.py from the AsyncAPI schemas (streamgate/spec/schemas.py).

``python tests/unit/client/modelgen.py > streamgate/client/models.py``, then ``ruff format``
and ``ruff check --fix`` of it, regenerates it; tests/unit/client/test_models.py fails when
a model's members differ from its schema's, either way.
"""

from __future__ import annotations

from typing import Any

from streamgate.spec.schemas import PUSH_DATA, STREAM_DATA

HEADER = '''"""Typed payloads of every event: generated from the AsyncAPI schemas, do not edit.

Rendered by tests/unit/client/modelgen.py from streamgate/spec/schemas.py (the contract's
source); tests/unit/client/test_models.py holds the two equal. Each payload is a
``TypedDict`` over the very dict the wire gave (:attr:`Event.data`): prices, sizes and
amounts stay the integers (or exact ``JsonNumber``) they were, nothing is converted.
``parse(name, data)`` checks the members and returns the typed view.
"""

# No ``from __future__ import annotations`` here: TypedDict reads NotRequired[] at runtime.
from typing import Any, Literal, NotRequired, TypedDict, cast

from streamgate.core.exact_json import JsonNumber

'''


def py_type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "const" in schema:
        return f"Literal[{schema['const']!r}]"
    if "enum" in schema:
        return (
            "Literal["
            + ", ".join(repr(v) for v in schema["enum"] if v is not None)
            + "]"
            + (" | None" if None in schema["enum"] else "")
        )
    for key in ("anyOf", "oneOf"):
        if key in schema:
            parts = list(dict.fromkeys(py_type(s) for s in schema[key]))
            return " | ".join(parts)
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(dict.fromkeys(py_type({**schema, "type": k}) for k in kind))
    if kind == "integer":
        return "int"
    if kind == "number":
        return "int | float | JsonNumber"
    if kind == "string":
        return "str"
    if kind == "boolean":
        return "bool"
    if kind == "null":
        return "None"
    if kind == "array":
        items = schema.get("items", {})
        if items.get("type") == "array":
            return "list[list[int]]"
        return f"list[{py_type(items)}]"
    if kind == "object":
        return "dict[str, Any]"
    return "Any"


def render() -> str:
    out = [HEADER]
    names: list[str] = []
    aliases: list[str] = []
    for name, schema in [*STREAM_DATA.items(), *PUSH_DATA.items()]:
        if schema.get("type") != "object":
            aliases.append(f"{name} = {py_type(schema)}\n")
            continue
        names.append(name)
        required = set(schema.get("required", []))
        out.append(f"\nclass {name}(TypedDict):\n")
        out.append(f'    """``{name}`` of the AsyncAPI document."""\n\n')
        for prop, sub in schema["properties"].items():
            typ = py_type(sub)
            typ = typ if prop in required else f"NotRequired[{typ}]"
            out.append(f"    {prop}: {typ}\n")
        out.append("\n")
    body = "".join(out)
    alias_text = "".join(aliases)
    models = ",\n    ".join(f'"{n}": {n}' for n in names)
    tail = f'''
MODELS: dict[str, type] = {{
    {models},
}}


def parse(name: str, data: Any) -> Any:
    """Check ``data`` has the members of model ``name`` (all required, none unknown).

    Returns ``data`` itself, to be read as that model: ``cast(Trade, parse("Trade", d))``.

    Raises:
        KeyError: no model of that name.
        ValueError: a required member is missing or an unknown one is present.
    """
    model = MODELS[name]
    if not isinstance(data, dict):
        raise ValueError(f"{{name}} must be an object")
    required: frozenset[str] = model.__required_keys__  # type: ignore[attr-defined]
    known = required | model.__optional_keys__  # type: ignore[attr-defined]
    missing, unknown = required - data.keys(), data.keys() - known
    if missing or unknown:
        raise ValueError(f"{{name}}: missing {{sorted(missing)}}, unknown {{sorted(unknown)}}")
    return cast(Any, data)
'''
    all_names = sorted([*names, *(a.split(" =")[0] for a in aliases), "MODELS", "parse"])
    exported = "__all__ = [\n" + "".join(f'    "{n}",\n' for n in all_names) + "]\n\n"
    return HEADER + exported + alias_text + body[len(HEADER) :] + tail


if __name__ == "__main__":
    print(render(), end="")
