"""The output schemas' evolution policy, as a check (README "Schema evolution").

Within a schema version an output may only gain optional fields. Removing a field,
changing its type or meaning, or making a field required is a new major version
(`schemas.outputs.SCHEMA_VERSION`) on a new topic name, so that no consumer reading a
topic ever meets an event its schema refuses. `breaking_changes` compares the JSON
Schema a consumer was written against (a released one, kept in `RELEASED_DIR`) with the
current one and names every change the policy forbids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: the schemas and example events of each released schema version: RELEASED_DIR / "<n>"
RELEASED_DIR = Path(__file__).parent / "released"
#: what documents a field without constraining it
_PROSE = frozenset({"description", "title", "examples"})


def released(version: int) -> dict[str, dict[str, Any]]:
    """event type -> the JSON Schema released with schema version `version`."""
    directory = RELEASED_DIR / str(version)
    return {
        path.name.removesuffix(".schema.json"): json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(directory.glob("*.schema.json"))
    }


def released_examples(version: int) -> list[dict[str, Any]]:
    """Output events as schema version `version` wrote them."""
    path = RELEASED_DIR / str(version) / "examples.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What in `new` would break a consumer of `old` (empty: only additions)."""
    found = _object_changes("", old, new)
    old_defs, new_defs = old.get("$defs", {}), new.get("$defs", {})
    for name, definition in old_defs.items():
        if name not in new_defs:
            found.append(f"$defs/{name}: removed")
        else:
            found.extend(_object_changes(f"$defs/{name}.", definition, new_defs[name]))
    return found


def _object_changes(where: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    found = []
    if new.get("additionalProperties") is False and old.get("additionalProperties") is not False:
        found.append(f"{where or '.'}: closed to additions")
    old_fields, new_fields = old.get("properties", {}), new.get("properties", {})
    for name, schema in old_fields.items():
        if name not in new_fields:
            found.append(f"{where}{name}: removed")
        elif _constraints(new_fields[name]) != _constraints(schema):
            found.append(f"{where}{name}: type or constraints changed")
    for name in set(new.get("required", [])) - set(old.get("required", [])):
        found.append(f"{where}{name}: now required")
    return found


def _constraints(schema: Any) -> Any:
    """A field's schema without its prose: what a validator checks."""
    if isinstance(schema, dict):
        return {k: _constraints(v) for k, v in schema.items() if k not in _PROSE}
    if isinstance(schema, list):
        return [_constraints(v) for v in schema]
    return schema
