"""The OpenAPI 3.1 → 3.0 respelling /docs reads (Swagger UI 4 renders no 3.1). Pure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from polysync.api.app import create_app
from polysync.api.openapi30 import VERSION, document_30, schema_30
from polysync.config import load_settings

REF = {"$ref": "#/components/schemas/Role"}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"type": "string"}, {"type": "string"}),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, {"type": "string", "nullable": True}),
        (
            {"anyOf": [REF, {"type": "null"}], "title": "R"},
            {"allOf": [REF], "title": "R", "nullable": True},
        ),
        (
            {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
            {"anyOf": [{"type": "string"}, {"type": "integer"}], "nullable": True},
        ),
        ({"oneOf": [{"type": "integer"}, {"type": "null"}]}, {"type": "integer", "nullable": True}),
        ({"allOf": [REF]}, {"allOf": [REF]}),
        ({"type": ["string", "null"]}, {"type": "string", "nullable": True}),
        ({"type": ["string", "integer"]}, {"anyOf": [{"type": "string"}, {"type": "integer"}]}),
        ({"type": "string", "examples": ["a", "b"]}, {"type": "string", "example": "a"}),
        ({"type": "string", "examples": []}, {"type": "string"}),
        ({"const": "x"}, {"enum": ["x"]}),
        ({"exclusiveMinimum": 0}, {"minimum": 0, "exclusiveMinimum": True}),
        ({"exclusiveMaximum": 1.5}, {"maximum": 1.5, "exclusiveMaximum": True}),
        ({"exclusiveMinimum": True, "minimum": 0}, {"exclusiveMinimum": True, "minimum": 0}),
        ({"type": "object", "propertyNames": {"maxLength": 3}}, {"type": "object"}),
        # Nested schemas are respelled too; property *names* are never keywords.
        (
            {"properties": {"const": {"type": ["integer", "null"]}, "examples": {"const": 1}}},
            {
                "properties": {
                    "const": {"type": "integer", "nullable": True},
                    "examples": {"enum": [1]},
                }
            },
        ),
        (
            {"items": {"anyOf": [REF, {"type": "null"}]}},
            {"items": {"allOf": [REF], "nullable": True}},
        ),
        (
            {"additionalProperties": {"type": ["string", "null"]}},
            {"additionalProperties": {"type": "string", "nullable": True}},
        ),
        ({"additionalProperties": False}, {"additionalProperties": False}),
    ],
)
def test_schema_30(given: dict[str, Any], expected: dict[str, Any]) -> None:
    assert schema_30(given) == expected


def _nodes(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(_nodes(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_nodes(item))
    return found


def test_our_document_has_no_31_spelling_left(tmp_path: Path) -> None:
    app = create_app(load_settings({"home": tmp_path}, environ={}), start_worker=False)
    try:
        original = app.openapi()
        doc = document_30(original)
    finally:
        app.state.services.close()
    assert original["openapi"].startswith("3.1")
    assert doc["openapi"] == VERSION
    assert doc["paths"].keys() == original["paths"].keys()
    assert doc["components"]["schemas"].keys() == original["components"]["schemas"].keys()
    schema_nodes = _nodes(doc["components"]) + [
        n["schema"] for n in _nodes(doc["paths"]) if isinstance(n.get("schema"), dict)
    ]
    for node in _nodes(schema_nodes):
        assert node.get("type") != "null", node
        assert not isinstance(node.get("type"), list), node
        assert "propertyNames" not in node, node
        assert not isinstance(node.get("examples"), list), node
    # Before: 3.1 spellings were there to respell.
    assert any(n.get("type") == "null" for n in _nodes(original))
