"""The seed 001 recipe JSON Schema (shipped as recipe.schema.json) and its validator."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

SCHEMA_FILE = "recipe.schema.json"


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """One schema violation, located by JSON pointer (RFC 6901) into the submitted document."""

    pointer: str
    message: str


@cache
def recipe_schema() -> dict[str, Any]:
    """The recipe JSON Schema exactly as shipped."""
    text = resources.files("relay_contracts").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> Draft202012Validator:
    schema = recipe_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _pointer(error: ValidationError) -> str:
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in error.absolute_path]
    required = error.validator_value
    if error.validator == "required" and isinstance(error.instance, dict) and isinstance(required, list):
        missing = [name for name in required if name not in error.instance]
        if missing:
            parts.append(str(missing[0]))
    return "/" + "/".join(parts) if parts else ""


def validate_recipe(document: object) -> list[SchemaProblem]:
    """Every way ``document`` breaks the recipe schema, in document order; empty when it is valid."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    return [SchemaProblem(pointer=_pointer(e), message=e.message) for e in errors]
