"""The JSON Schema of `loopscope report --format json`, and a checker for the subset it uses.

docs/report-schema.md explains every field; this is the machine-readable form (JSON Schema
2020-12: `type`, `properties`, `required`, `additionalProperties`, `items`, `enum`, `$ref`
into `$defs`). `schema_errors(document)` lists where a document departs from it, so tests
need no third-party validator; `python -m loopscope.tracer.report_schema` prints the schema.
"""

from __future__ import annotations

import json
from typing import Any

from loopscope.tracer.events import STATE_NAMES
from loopscope.tracer.findings import RULES

_INT = {"type": "integer"}
_NULLABLE_INT = {"type": ["integer", "null"]}
_NULLABLE_STR = {"type": ["string", "null"]}
_NS = {"type": "integer", "minimum": 0}


def _object(properties: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "loopscope-report/1",
    "title": "loopscope report",
    **_object({
        "schema": {"enum": ["loopscope-report/1"]},
        "run": {"$ref": "#/$defs/run"},
        "lanes": {"type": "array", "items": {"$ref": "#/$defs/lane"}},
        "findings": {"type": "array", "items": {"$ref": "#/$defs/finding"}},
    }),
    "$defs": {
        "run": _object({
            "target": _NULLABLE_STR,
            "model": _NULLABLE_STR,
            "python": _NULLABLE_STR,
            "status": _NULLABLE_STR,
            "exit_code": _NULLABLE_INT,
            "error": _NULLABLE_STR,
            "duration_ns": _NS,
            "events": _NS,
            "lanes": _NS,
            "lane_kinds": {"type": "array", "items": {"type": "string"}},
            "samples": _NS,
        }),
        "spread": _object({"count": _NS, "p50_ns": _NS, "p99_ns": _NS, "max_ns": _NS}),
        "lane": _object({
            "lane": _INT,
            "name": {"type": "string"},
            "kind": {"type": "string"},
            "status": {"enum": ["ended", "cancelled", "failed", "alive"]},
            "cost_ns": _NS,
            "time_ns": _object({name: _NS for name in STATE_NAMES.values()}),
            "steps": {"$ref": "#/$defs/spread"},
            "latency": {"$ref": "#/$defs/spread"},
            "wakes_given": _NS,
            "wakes_received": _NS,
            "self_wakes": _NS,
        }),
        "frame": _object({"file": {"type": "string"}, "line": _INT,
                          "function": {"type": "string"}}),
        "delay": _object({"lane": _INT, "name": {"type": "string"}, "ready_ns": _NS,
                          "late_timer_ns": _NS, "total_ns": _NS}),
        "finding": _object({
            "rule": {"enum": list(RULES)},
            "title": {"type": "string"},
            "explanation": {"type": "string"},
            "scenario": _NULLABLE_STR,
            "lane": _NULLABLE_INT,
            "lane_name": _NULLABLE_STR,
            "ts_ns": _NULLABLE_INT,
            "duration_ns": _NS,
            "where": _NULLABLE_STR,
            "source": {"anyOf": [{"$ref": "#/$defs/frame"}, {"type": "null"}]},
            "stack": {"type": "array", "items": {"$ref": "#/$defs/frame"}},
            "samples": _NS,
            "seq": _NULLABLE_INT,
            "delayed": {"type": "array", "items": {"$ref": "#/$defs/delay"}},
            "facts": {"type": "object"},
        }),
    },
}

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "integer": (int,),
    "number": (int, float), "boolean": (bool,), "null": (type(None),),
}


def schema_errors(document: Any, schema: dict[str, Any] | None = None) -> list[str]:
    """Where `document` departs from the schema, one line each (empty when it conforms)."""
    errors: list[str] = []
    root = SCHEMA if schema is None else schema
    _check(document, root, root, "$", errors)
    return errors


def _check(value: Any, schema: dict[str, Any], root: dict[str, Any], path: str,
           errors: list[str]) -> None:
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        _check(value, root["$defs"][name], root, path, errors)
        return
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            attempt: list[str] = []
            _check(value, option, root, path, attempt)
            if not attempt:
                return
        errors.append(f"{path}: matches none of its alternatives")
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    kinds = schema.get("type")
    if kinds is not None:
        allowed = [kinds] if isinstance(kinds, str) else kinds
        matches = any(isinstance(value, _TYPES[kind]) and not (
            kind in ("integer", "number") and isinstance(value, bool)) for kind in allowed)
        if not matches:
            errors.append(f"{path}: {type(value).__name__} is not {' or '.join(allowed)}")
            return
    if isinstance(value, int) and not isinstance(value, bool) and "minimum" in schema \
            and value < schema["minimum"]:
        errors.append(f"{path}: {value} is below {schema['minimum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}: '{name}' is missing")
        for name, item in value.items():
            if name in properties:
                _check(item, properties[name], root, f"{path}.{name}", errors)
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: '{name}' is not allowed")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _check(item, schema["items"], root, f"{path}[{index}]", errors)


if __name__ == "__main__":
    print(json.dumps(SCHEMA, indent=2))
