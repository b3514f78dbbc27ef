"""The shipped JSON Schemas: valid against the draft 2020-12 metaschema, and each one's $id
carries its major version (the installer does not re-check them at every start)."""

from __future__ import annotations

from importlib import resources

import pytest
from jsonschema import Draft202012Validator

from pybundle.schema import load_schema

SCHEMAS = sorted(
    p.name
    for p in resources.files("pybundle").joinpath("schemas").iterdir()
    if p.name.endswith(".json")
)


@pytest.mark.parametrize("name", SCHEMAS)
def test_shipped_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    kind, version = name.removesuffix(".schema.json").rsplit("-v", 1)
    assert schema["$id"] == f"urn:pybundle:schema:{kind}:v{version}"


def test_every_schema_is_tested() -> None:
    assert {"manifest-v1.schema.json", "manifest-v2.schema.json", "receipt-v1.schema.json"} <= set(
        SCHEMAS
    )
