"""The seed 001 recipe JSON Schema (shipped as recipe.schema.json), its validator, and the limits it leaves open."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from relay_contracts.types import has_lone_surrogate, replace_lone_surrogates

SCHEMA_FILE = "recipe.schema.json"
MESSAGE_CHARS = 300


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """One schema violation, located by JSON pointer (RFC 6901) into the submitted document."""

    pointer: str
    message: str


@dataclass(frozen=True, slots=True)
class RecipeLimits:
    """Bounds the seed schema leaves open (it has no ``maxItems`` or ``maxLength``); checked besides the schema."""

    max_components: int = 500
    max_views: int = 100
    max_attachments: int = 100
    # Any other array, at any depth: tags, related, assembly, a component's description list, a view's variants...
    max_array_items: int = 1000
    # Characters in any string value or object key.
    max_string_length: int = 10_000
    # Objects and arrays inside one another; the recipe itself is level 1.
    max_depth: int = 32

    def array_limit(self, parent: tuple[str | int, ...]) -> tuple[str, int]:
        """The limit (its name and value) on the array at ``parent``."""
        if parent == ("components",):
            return "max_components", self.max_components
        if parent == ("views",):
            return "max_views", self.max_views
        if parent == ("attachments",):
            return "max_attachments", self.max_attachments
        return "max_array_items", self.max_array_items


RECIPE_LIMITS = RecipeLimits()
"""The default limits."""

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True, slots=True)
class BoundProblem:
    """A part of a recipe over one of ``RecipeLimits`` (``too_large``: a count; otherwise a value to fix)."""

    pointer: str
    message: str
    limit: str | None
    too_large: bool = False


def _part(part: str | int) -> str:
    # A lone surrogate cannot be sent back in a UTF-8 answer: the pointer shows U+FFFD in its place.
    return replace_lone_surrogates(str(part)).replace("~", "~0").replace("/", "~1")


def json_pointer(path: tuple[str | int, ...]) -> str:
    """The RFC 6901 pointer of ``path``."""
    return "".join("/" + _part(p) for p in path)


def _text_problem(text: str, limits: RecipeLimits) -> tuple[str, str | None] | None:
    """What is wrong with a string value or key, and the limit it breaks (``None``: not a limit)."""
    if len(text) > limits.max_string_length:
        return f"must be at most {limits.max_string_length} characters", "max_string_length"
    if "\x00" in text:
        # PostgreSQL's jsonb and text, and C consumers, cannot hold it.
        return "must not contain NUL (\\u0000)", None
    if has_lone_surrogate(text):
        return "must not hold a lone surrogate (\\ud800-\\udfff alone is not Unicode text)", None
    return None


def _number_problem(value: int | float) -> str | None:
    if isinstance(value, int):
        return None if INT64_MIN <= value <= INT64_MAX else "must be an integer from -2^63 to 2^63-1"
    return None if math.isfinite(value) else "must be a finite number"


def recipe_bound_problems(
    document: object, limits: RecipeLimits = RECIPE_LIMITS, *, max_problems: int = 50
) -> list[BoundProblem]:
    """Where ``document`` breaks ``limits`` or holds a value no consumer can store (NUL, a lone surrogate, an
    integer past 64 bits, NaN/Infinity), at most ``max_problems``, in document order.

    An array over its count limit or an object key in error is reported, and not looked into.
    """
    problems: list[BoundProblem] = []
    for problem in _walk(document, limits):
        problems.append(problem)
        if len(problems) >= max_problems:
            break
    return problems


def _walk(document: object, limits: RecipeLimits) -> Iterator[BoundProblem]:
    # Iterative, children pushed in reverse so problems come in document order; depth is bounded before descending.
    stack: list[tuple[object, tuple[str | int, ...], int]] = [(document, (), 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, BoundProblem):
            yield value
        elif isinstance(value, str):
            found = _text_problem(value, limits)
            if found is not None:
                yield BoundProblem(json_pointer(path), found[0], found[1])
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int | float):
            message = _number_problem(value)
            if message is not None:
                yield BoundProblem(json_pointer(path), message, None)
        elif isinstance(value, dict | list):
            if depth > limits.max_depth:
                yield BoundProblem(json_pointer(path), f"nested deeper than {limits.max_depth} levels", "max_depth")
            elif isinstance(value, list):
                name, most = limits.array_limit(path)
                if len(value) > most:
                    yield BoundProblem(json_pointer(path), f"{len(value)} items; at most {most}", name, too_large=True)
                else:
                    stack.extend((value[i], (*path, i), depth + 1) for i in range(len(value) - 1, -1, -1))
            else:
                for key, item in reversed(value.items()):
                    found = _text_problem(key, limits)
                    if found is None:
                        stack.append((item, (*path, key), depth + 1))
                    else:
                        # Named by its object: the key itself may be what cannot be shown.
                        stack.append(
                            (BoundProblem(json_pointer(path), f"every object key {found[0]}", found[1]), path, 0)
                        )


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


def _brief(message: str) -> str:
    # jsonschema quotes the offending value in its message; a long value must not make a huge answer.
    return message if len(message) <= MESSAGE_CHARS else message[: MESSAGE_CHARS - 1] + "…"


def validate_recipe(document: object) -> list[SchemaProblem]:
    """Every way ``document`` breaks the recipe schema, in document order; empty when it is valid."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    return [SchemaProblem(pointer=_pointer(e), message=_brief(e.message)) for e in errors]
