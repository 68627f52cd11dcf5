"""JSON Schema (Draft 2020-12) of a canonical page, generated from the models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from .models import CROSS_FIELD_RULES, Page
from .version import SCHEMA_ID, SPEC_VERSION

SCHEMA_FILE = f"dataspec-{SPEC_VERSION}.schema.json"
"""File name of the committed schema under `schemas/`."""


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of a DataSpec v0.3 page file."""
    schema = Page.model_json_schema(mode="validation")
    rules = "; ".join(CROSS_FIELD_RULES)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": f"DataSpec v{SPEC_VERSION} page",
        "description": (
            "One comic page of training data. Enforced by the strict loader only "
            f"(not expressible in JSON Schema): {rules}."
        ),
    }


def schema_bytes() -> bytes:
    """The schema as written to `schemas/`: sorted keys, 2-space indent, trailing newline."""
    return orjson.dumps(
        json_schema(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
    )


def write_schema(path: str | Path) -> Path:
    """Write the schema atomically."""
    from .io import atomic_write_bytes

    return atomic_write_bytes(path, schema_bytes())
