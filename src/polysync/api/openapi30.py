"""Our OpenAPI 3.1 document, rewritten for OpenAPI 3.0 readers. Pure.

Why: /docs uses the Swagger UI of the installed ``swagger-ui-bundle`` package (4.x),
which refuses to render a 3.1 document; FastAPI writes 3.1. The API's own
``/openapi.json`` stays 3.1; /docs reads this copy, which differs only where 3.0 spells
the same thing another way:

- ``anyOf``/``oneOf`` with ``{"type": "null"}``, or ``type: [T, "null"]`` → ``nullable``
  (a lone ``$ref`` goes under ``allOf``, since 3.0 ignores siblings of ``$ref``);
- ``examples: [v, ...]`` in a schema → ``example: v``; ``const: v`` → ``enum: [v]``;
- numeric ``exclusiveMinimum``/``exclusiveMaximum`` → ``minimum``/``maximum`` + ``true``;
- keywords 3.0 does not know (``propertyNames``, ``$schema``, …) are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

VERSION = "3.0.3"
_NULL = {"type": "null"}
_DROPPED = frozenset(
    {
        "$schema",
        "$id",
        "propertyNames",
        "contentMediaType",
        "contentEncoding",
        "unevaluatedProperties",
    }
)
# Keywords whose value is a schema, and those whose value is a list or map of schemas.
_ONE = ("items", "not", "additionalProperties")
_LIST = ("anyOf", "oneOf", "allOf")
_MAP = ("properties", "patternProperties")


def schema_30(schema: Any) -> Any:
    """One JSON Schema (OpenAPI 3.1 flavour) → its OpenAPI 3.0 spelling."""
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    nullable = False
    for key, value in schema.items():
        if key in _DROPPED:
            continue
        if key in _LIST and isinstance(value, list):
            kept = [schema_30(s) for s in value if s != _NULL]
            nullable = nullable or len(kept) < len(value)
            if len(kept) == 1 and key != "allOf":
                out.update(_merge_single(kept[0]))
            elif kept:
                out[key] = kept
        elif key in _ONE:
            out[key] = schema_30(value)
        elif key in _MAP and isinstance(value, Mapping):
            out[key] = {name: schema_30(s) for name, s in value.items()}
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            nullable = nullable or len(types) < len(value)
            if len(types) == 1:
                out["type"] = types[0]
            elif types:
                out["anyOf"] = [{"type": t} for t in types]
        elif key == "examples" and isinstance(value, list):
            if value:
                out["example"] = value[0]
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and _is_number(value):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    if nullable:
        out["nullable"] = True
    return out


def _merge_single(only: Mapping[str, Any]) -> dict[str, Any]:
    # 3.0 ignores everything beside a $ref, so a nullable reference needs allOf.
    if "$ref" in only:
        return {"allOf": [dict(only)]}
    return dict(only)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _walk(node: Any) -> Any:
    """Every ``schema`` of the document (parameters, bodies, responses) → 3.0."""
    if isinstance(node, Mapping):
        return {k: schema_30(v) if k == "schema" else _walk(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(item) for item in node]
    return node


def document_30(document: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a whole OpenAPI 3.1 document for OpenAPI 3.0 readers."""
    out: dict[str, Any] = {k: _walk(v) for k, v in document.items() if k != "components"}
    out["openapi"] = VERSION
    out.pop("webhooks", None)
    out.pop("jsonSchemaDialect", None)
    components = document.get("components")
    if isinstance(components, Mapping):
        out["components"] = {
            k: (
                {name: schema_30(s) for name, s in v.items()}
                if k == "schemas" and isinstance(v, Mapping)
                else _walk(v)
            )
            for k, v in components.items()
        }
    return out
