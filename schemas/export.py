"""JSON Schema export: one file per event type, the stored customer state, and the HTTP
API's OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.http import openapi
from schemas.inputs import INPUT_MODELS
from schemas.outputs import OUTPUT_MODELS
from schemas.state import CustomerStateRecord

#: The copy kept in the repository; a test fails when it drifts from the models.
REPOSITORY_DIR = Path(__file__).parent / "json"


def open_to_additions(schema: Any) -> Any:
    """The schema without `additionalProperties: false` anywhere: an output may gain
    optional fields within its schema version (README "Schema evolution"), so a consumer
    that validates with the schema it was written against must accept them."""
    if isinstance(schema, dict):
        return {
            key: open_to_additions(value)
            for key, value in schema.items()
            if not (key == "additionalProperties" and value is False)
        }
    if isinstance(schema, list):
        return [open_to_additions(value) for value in schema]
    return schema


def all_schemas() -> dict[str, dict[str, Any]]:
    """file name -> JSON Schema, for every input event, output event and the state record.
    Inputs are closed (an unknown field is a schema violation, so a typo is not lost);
    outputs are open to additions."""
    models: dict[str, type[BaseModel]] = {**INPUT_MODELS, **OUTPUT_MODELS}
    schemas = {}
    for event_type, model in sorted(models.items()):
        schema = model.model_json_schema(mode="serialization")
        if event_type in OUTPUT_MODELS:
            schema = open_to_additions(schema)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"urn:vipstream:schema:{event_type}"
        schemas[f"{event_type}.schema.json"] = schema
    state = CustomerStateRecord.model_json_schema()
    state["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    state["$id"] = "urn:vipstream:schema:customer_state"
    schemas["customer_state.schema.json"] = state
    schemas["openapi.json"] = openapi()
    return schemas


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema into `directory` (created if needed); the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in all_schemas().items():
        path = directory / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written
