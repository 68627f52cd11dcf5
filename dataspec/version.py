"""Spec version constants (separate from the package version)."""

SPEC_VERSION = "0.3"
"""The DataSpec version this package reads and writes."""

SCHEMA_ID = "https://dataspec.dev/schemas/dataspec-0.3.schema.json"
"""The `$id` of the published JSON Schema for this version."""
