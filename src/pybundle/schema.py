"""Loading the manifest JSON Schema shipped as package data and validating documents with it.

The schema is ``pybundle/schemas/manifest-v1.schema.json`` (JSON Schema draft 2020-12); its
``$id`` carries the major version, so a future incompatible manifest gets a new file.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from pybundle.errors import ManifestError

SCHEMA_FILE = "manifest-v1.schema.json"
SCHEMA_ID = "urn:pybundle:schema:manifest:v1"


@lru_cache(maxsize=1)
def manifest_schema() -> dict[str, Any]:
    """Return the parsed manifest schema (a dict), loaded once from package data."""
    text = resources.files("pybundle").joinpath("schemas", SCHEMA_FILE).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    schema = manifest_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate_manifest_document(document: Any, source: str) -> None:
    """Validate a decoded manifest against the schema.

    Raises ManifestError with one line naming ``source``, the JSON path of the first
    error and its reason.
    """
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        reason = first.message
        if len(reason) > 200:
            reason = reason[:200] + "..."
        raise ManifestError(f"{source}: manifest fails the schema at {where}: {reason}")
