"""Loading the JSON Schemas shipped as package data and validating documents with them.

``pybundle/schemas/manifest-v1.schema.json`` describes the bundle manifest and
``receipt-v1.schema.json`` the install receipt (both JSON Schema draft 2020-12); each ``$id``
carries the major version, so a future incompatible document gets a new file.

Validation has a fast accept path: :mod:`pybundle._schemas_compiled` holds validators compiled
ahead of time from these files (``make schemas``, scripts/compile_schemas.py), so that a valid
document, the normal case, is accepted without importing jsonschema (~20 ms of start-up). When
a compiled validator rejects a document, or fails, jsonschema validates it again, decides, and
words the error; the compiled validators may only be stricter (tests/test_schema_compiled.py).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pybundle.errors import ManifestError, PybundleError

SCHEMA_FILE = "manifest-v1.schema.json"
SCHEMA_ID = "urn:pybundle:schema:manifest:v1"
MANIFEST_SCHEMAS = {
    1: "manifest-v1.schema.json",
    2: "manifest-v2.schema.json",
    3: "manifest-v3.schema.json",
}
"""Manifest schema files by ``schema_version``: every version this pybundle reads."""
RECEIPT_SCHEMA_FILE = "receipt-v1.schema.json"

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator


@lru_cache(maxsize=4)
def load_schema(name: str) -> dict[str, Any]:
    """Return the parsed schema ``pybundle/schemas/<name>`` (a dict), loaded once."""
    from importlib import resources  # only when jsonschema is needed: ~1.5 ms of start-up

    text = resources.files("pybundle").joinpath("schemas", name).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def manifest_schema() -> dict[str, Any]:
    """Return the parsed manifest schema (a dict), loaded once from package data."""
    return load_schema(SCHEMA_FILE)


@lru_cache(maxsize=4)
def _validator(name: str) -> Draft202012Validator:
    # The shipped schemas are checked against the draft 2020-12 metaschema by the tests
    # (tests/test_schema.py), not at every start: that check costs more than a validation.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema(name))


def compiled_accepts(document: Any, schema_name: str) -> bool:
    """True when the validator compiled from ``schema_name`` accepts ``document``.

    False when it rejects the document, when no validator was compiled from that file, or
    when it raises anything: the caller then asks jsonschema. Never imports jsonschema.
    """
    try:
        from pybundle._schemas_compiled import VALIDATORS

        check = VALIDATORS.get(schema_name)
        return check is not None and check(document) is True
    except Exception:
        return False


def validate_document(
    document: Any, schema_name: str, source: str, what: str, error: type[PybundleError]
) -> None:
    """Validate a decoded document against the shipped schema ``schema_name``.

    Raises ``error`` with one line naming ``source``, ``what`` the document is, the JSON path
    of the first error and its reason. A document the compiled validator accepts
    (:func:`compiled_accepts`) is valid without asking jsonschema.
    """
    if compiled_accepts(document, schema_name):
        return
    errors = sorted(_validator(schema_name).iter_errors(document), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        reason = first.message
        if len(reason) > 200:
            reason = reason[:200] + "..."
        raise error(f"{source}: {what} fails the schema at {where}: {reason}")


def validate_manifest_document(document: Any, source: str) -> None:
    """Validate a decoded manifest against the schema of its ``schema_version``
    (:data:`MANIFEST_SCHEMAS`).

    Raises ManifestError with one line naming ``source``, the JSON path of the first
    error and its reason; for a version newer than this pybundle reads, the message says so
    and that pybundle must be upgraded on this host.
    """
    version = document.get("schema_version") if isinstance(document, dict) else None
    newest = max(MANIFEST_SCHEMAS)
    if type(version) is int and version > newest:
        from pybundle import __version__

        raise ManifestError(
            f"{source}: the manifest has schema version {version}, and pybundle {__version__} "
            f"reads versions 1 to {newest}: install a newer pybundle on this host"
        )
    name = MANIFEST_SCHEMAS.get(version, SCHEMA_FILE) if type(version) is int else SCHEMA_FILE
    validate_document(document, name, source, "manifest", ManifestError)
