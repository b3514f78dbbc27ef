"""The validators compiled from the shipped schemas (src/pybundle/_schemas_compiled.py, the fast
accept path of pybundle.schema): current with the schema files, never looser than jsonschema
(differentially, over mutations of the documents pybundle's own builders write), accepting
those documents, and keeping jsonschema out of a valid ``verify`` and ``install``."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import importlib.util
import json
import subprocess
import sys
import uuid
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

sys.path.insert(0, str(Path(__file__).resolve().parent / "fuzz"))

from fuzzlib import compact_bundle, json_values, make_base, wheelhouse_doc

from conftest import make_tar, tiny_artifact, tiny_interpreter_members
from pybundle import _schemas_compiled, schema
from pybundle.errors import ManifestError
from pybundle.installer.receipts import BundleIdentity, FileEntry, Receipt
from pybundle.jsondoc import load_json
from pybundle.manifest import Manifest, Portability
from pybundle.selfinstall.section import Bootstrap, CarriedFile, SelfInstall
from pybundle.targets import Target

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "src" / "pybundle" / "schemas"


def _compiler() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "compile_schemas", ROOT / "scripts" / "compile_schemas.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["compile_schemas"] = module
    spec.loader.exec_module(module)
    return module


compiler = _compiler()


def _jsonschema_valid(document: Any, name: str) -> bool:
    return bool(Draft202012Validator(schema.load_schema(name)).is_valid(document))


# ------------------------------------------------------------------ the committed module


def test_the_committed_module_is_what_the_schemas_compile_to() -> None:
    generated = compiler.generate()
    committed = (ROOT / "src" / "pybundle" / "_schemas_compiled.py").read_text("utf-8")
    assert generated == committed, "the schemas changed: run `make schemas` and commit"


def test_every_schema_of_the_registry_is_compiled_from_its_current_file() -> None:
    names = {schema.SCHEMA_FILE, schema.RECEIPT_SCHEMA_FILE, *schema.MANIFEST_SCHEMAS.values()}
    assert set(_schemas_compiled.VALIDATORS) == names
    for name in names:
        digest = hashlib.sha256((SCHEMA_DIR / name).read_bytes()).hexdigest()
        assert _schemas_compiled.SCHEMA_SHA256[name] == digest


# ------------------------------------------------------------------ the compiler on its own


def _compile(tmp_path: Path, schema_doc: dict[str, Any]) -> Callable[[Any], bool]:
    doc = {"$schema": compiler.DRAFT, **schema_doc}
    (tmp_path / "t.schema.json").write_text(json.dumps(doc))
    namespace: dict[str, Any] = {}
    exec(compiler.generate(tmp_path, ["t.schema.json"]), namespace)
    check: Callable[[Any], bool] = namespace["VALIDATORS"]["t.schema.json"]
    return check


@pytest.mark.parametrize(
    "schema_doc",
    [
        {"prefixItems": [{"type": "string"}]},
        {"patternProperties": {"^a": {"type": "string"}}},
        {"additionalProperties": {"type": "string"}},
        {"properties": {"a": {"$ref": "urn:other#/x"}}},
        {"properties": {"a": {"$ref": "#/$defs/missing"}}},
        {"properties": {"a": {"$id": "urn:nested", "type": "string"}}},
        {"const": 1.5},
        {"enum": [[1]]},
        {"type": "string", "format": "date-time"},
        {"uniqueItems": True},
        {"not": {"type": "string"}},
        {"anyOf": [{"type": "string"}]},
        {"type": "decimal"},
        {"maxLength": -1},
    ],
)
def test_the_compiler_refuses_what_it_does_not_implement(
    tmp_path: Path, schema_doc: dict[str, Any]
) -> None:
    with pytest.raises(compiler.SchemaCompileError):
        _compile(tmp_path, schema_doc)


def test_the_compiler_refuses_another_draft(tmp_path: Path) -> None:
    (tmp_path / "t.schema.json").write_text(
        json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", "type": "string"})
    )
    with pytest.raises(compiler.SchemaCompileError):
        compiler.generate(tmp_path, ["t.schema.json"])


# A schema using every keyword the compiler implements, with the traps where a naive
# implementation differs from jsonschema: True == 1 and False == 0 in Python, 1.0 is an integer
# for JSON Schema, '$' matches before a final newline in Python's re, keywords beside a $ref
# count in draft 2020-12, and oneOf fails when several branches match.
KEYWORDS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["one"],
    "properties": {
        "one": {"const": 1},
        "zero": {"enum": [0, None, "x"]},
        "flag": {"const": False},
        "int": {"type": "integer", "minimum": -2, "maximum": 3},
        "num": {"type": ["number", "null"], "maximum": 2},
        "text": {"type": "string", "pattern": "^[a-z]{1,3}$", "minLength": 2, "maxLength": 3},
        "loose": {"pattern": "^a", "maxLength": 2},
        "ref": {"$ref": "#/$defs/short", "maxLength": 2},
        "list": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"$ref": "#/$defs/short"}},
        "either": {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 0}]},
        "bools": {"type": "array", "items": {"type": "boolean"}},
        "never": False,
        "any": True,
    },
    "$defs": {"short": {"type": "string", "maxLength": 4}},
}

LEAVES = st.one_of(
    st.sampled_from([0, 1, -1, -2, -3, 2, 3, 4, True, False, None, 1.0, 0.0, 2.5, -0.0, 1e300]),
    st.sampled_from(["", "a", "ab", "abc", "abcd", "abcde", "ab\n", "a\n", "x", "A", "é"]),
    json_values(1),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=st.dictionaries(
        st.sampled_from([*KEYWORDS_SCHEMA["properties"], "extra"]),
        st.one_of(LEAVES, st.lists(LEAVES, max_size=3)),
        max_size=6,
    ),
    with_one=st.booleans(),
)
def test_every_keyword_decides_as_jsonschema_does(
    tmp_path_factory: pytest.TempPathFactory, doc: dict[str, Any], with_one: bool
) -> None:
    check = _keywords_validator(tmp_path_factory)
    if with_one:
        doc.setdefault("one", 1)
    expected = Draft202012Validator(KEYWORDS_SCHEMA).is_valid(doc)
    assert check(doc) == expected, f"compiled {check(doc)}, jsonschema {expected} for {doc!r}"


_KEYWORDS: list[Callable[[Any], bool]] = []


def _keywords_validator(factory: pytest.TempPathFactory) -> Callable[[Any], bool]:
    if not _KEYWORDS:
        _KEYWORDS.append(_compile(factory.mktemp("keywords"), KEYWORDS_SCHEMA))
    return _KEYWORDS[0]


@pytest.mark.parametrize(
    ("doc", "valid"),
    [
        ({"one": 1}, True),
        ({"one": True}, False),
        ({"one": 1.0}, True),
        ({"one": 1, "flag": 0}, False),
        ({"one": 1, "zero": False}, False),
        ({"one": 1, "int": True}, False),
        ({"one": 1, "int": 3.0}, True),
        ({"one": 1, "text": "ab\n"}, True),  # jsonschema's re.search: '$' before a final newline
        ({"one": 1, "ref": "abc"}, False),  # maxLength beside the $ref counts
        ({"one": 1, "either": 1}, False),  # both branches match
        ({"one": 1, "either": 1.5}, True),
        ({"one": 1, "never": None}, False),
        ({"one": 1, "extra": None}, False),
        ([], False),
    ],
)
def test_the_traps(tmp_path: Path, doc: Any, valid: bool) -> None:
    assert Draft202012Validator(KEYWORDS_SCHEMA).is_valid(doc) is valid
    assert _compile(tmp_path, KEYWORDS_SCHEMA)(doc) is valid


# ------------------------------------------------------------------ real documents

X86 = Target("linux", "x86_64", "gnu")
NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, schema file, document) for every kind of document pybundle's builders write."""
    work = tmp_path_factory.mktemp("documents")
    archive = make_tar(
        work / "cpython-3.12.1+20990101-x86_64-unknown-linux-gnu-install_only.tar.gz",
        tiny_interpreter_members(),
    )
    art = tiny_artifact(archive)
    local = dataclasses.replace(
        art, source_url=None, local_prefix="/opt/pyenv/versions/3.12.1", build_prefix=None,
        unpacked_size=4096, file_count=7,
    )  # fmt: skip
    portable = dataclasses.replace(
        local, portability=Portability("manylinux", (("lib/libx.so", ("libssl.so.3",)),))
    )
    hashed = dataclasses.replace(art, sha256_source="catalog", unpacked_size=None)
    wheels = (
        CarriedFile("wheels/pybundle-0.1.0-py3-none-any.whl", "wheel", 1234, "a" * 64),
        CarriedFile("__main__.py", "python-main", 99, "b" * 64),
    )
    section = SelfInstall(
        files=wheels,
        bootstraps=(Bootstrap(X86, art.member, "3.12", "bin/python3.12", (wheels[0].member,)),),
    )
    docs: list[tuple[str, dict[str, Any]]] = [
        ("v1", Manifest.new([art], now=NOW).to_json()),
        ("v1 expiring", Manifest.new([art, local, hashed], now=NOW, expires=NOW).to_json()),
        ("v2 portability", Manifest.new([portable], now=NOW).to_json()),
        ("v2 self-install", Manifest.new([art], now=NOW, self_install=section).to_json()),
    ]
    base = make_base(work, "tar.gz")
    docs.append(("v1 fuzz base", base.doc))
    docs.append(("v2 wheelhouses", wheelhouse_doc(base)[0]))
    compact = compact_bundle(base, work / "compact.pybundle", b"7z" * 64)
    with zipfile.ZipFile(compact) as zf:
        docs.append(("v2 compact", json.loads(zf.read("pybundle.json"))))
    out = []
    for label, doc in docs:
        out.append((label, schema.MANIFEST_SCHEMAS[doc["schema_version"]], doc))
    identity = BundleIdentity(str(uuid.uuid4()), 7, NOW, "0123456789ABCDEF", "/b/x.pybundle")
    files = (
        FileEntry("bin/python3.12", "file", 0o755, 12, "c" * 64),
        FileEntry("bin/python3", "symlink", target="python3.12"),
    )
    for label, receipt in [
        ("receipt", Receipt("/opt/py", "pybundle", NOW, identity, art, "/install", (), files)),
        ("receipt links", Receipt("/u/p", "uv", NOW, identity, local, None, ("/u/bin/py",))),
    ]:
        out.append((label, schema.RECEIPT_SCHEMA_FILE, receipt.to_json()))
    for label, name, doc in out:
        # the strict-JSON layer first, as the installer reads them
        reread = load_json(json.dumps(doc).encode(), label, "doc", ManifestError, max_bytes=2**20)
        assert reread == doc
        assert _jsonschema_valid(doc, name), label
    return out


def test_the_builders_documents_are_accepted_without_jsonschema(
    documents: list[tuple[str, str, dict[str, Any]]],
) -> None:
    labels = {label for label, _, _ in documents}
    assert {"v1", "v2 compact", "v2 wheelhouses", "v2 self-install", "receipt"} <= labels
    for label, name, doc in documents:
        assert schema.compiled_accepts(doc, name), label


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


NEAR_MISSES = st.sampled_from(
    [
        -1, 0, 1, 2**53 - 1, 2**53, 2**40, 2**40 + 1, 2**44 + 1, 4095, 4096, 1.0, True, None,
        "", "\n", "x" * 65, "x" * 4097, "archives/x\n", "a" * 64, "A" * 64, "0123456789ABCDEF",
        "2026-11-30T12:00:00Z\n", "2026-11-30T12:00:00+00:00", "/install/", "/", "/a\x7fb",
        "python/", "v5", "install_only ", "cpython\n", "3.12.1rc", "x86_64-unknown-linux",
        [], {}, {"url": "u", "local_prefix": "/p"}, {"url": ""},
        # and values some fields take, so that some mutants stay valid
        "musl", "full", "tar.zst", "v3", "pypy", "computed", "uv", "pyenv", "/opt/p", {"url": "u"},
    ]
)  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, documents: list[tuple[str, str, dict[str, Any]]]) -> tuple[str, Any]:
    _, name, original = draw(st.sampled_from(documents))
    doc: Any = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        op = draw(st.sampled_from(["replace", "near", "delete", "add", "text"]))
        if not path:
            if op in ("replace", "near"):
                doc = draw(json_values(1))
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        if op == "delete":
            del parent[last]
        elif op == "add" and isinstance(parent, dict):
            key = draw(st.sampled_from(["x", "url", "solid", "portability", "expires", ""]))
            parent[key] = copy.deepcopy(draw(st.one_of(NEAR_MISSES, json_values(1))))
        elif op == "add":
            parent.append(copy.deepcopy(parent[last]))
        elif op == "text" and isinstance(parent[last], str):
            value = parent[last]
            at = draw(st.integers(0, len(value)))
            insert = draw(st.sampled_from(["\n", "\x00", "\x1f", "\x7f", "/", "é", "A", " "]))
            parent[last] = value[:at] + insert + value[at:]
        elif op == "near":
            parent[last] = copy.deepcopy(draw(NEAR_MISSES))  # the samples are shared
        else:
            parent[last] = draw(json_values(1))
    return name, doc


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_compiled_validators_decide_as_jsonschema_on_mutated_documents(
    documents: list[tuple[str, str, dict[str, Any]]], data: st.DataObject
) -> None:
    name, doc = data.draw(mutated(documents))
    candidates = [doc]
    with contextlib.suppress(ManifestError):  # and as the installer gets it: strict JSON first
        candidates.append(
            load_json(json.dumps(doc).encode(), "m", "doc", ManifestError, max_bytes=2**24)
        )
    for candidate in candidates:
        compiled = schema.compiled_accepts(candidate, name)
        expected = _jsonschema_valid(candidate, name)
        event(f"jsonschema says valid: {expected}")
        assert not (compiled and not expected), f"FALSE ACCEPT under {name}: {candidate!r}"
        # The compiled keywords are exact (oneOf needs that), so they never reject more either.
        assert compiled == expected, f"false reject under {name}: {candidate!r}"


def test_an_invalid_document_still_gets_jsonschema_s_message() -> None:
    doc = {"schema_version": 1}
    with pytest.raises(ManifestError, match=r"fails the schema at \(top level\): 'bundle_id'"):
        schema.validate_manifest_document(doc, "x.json")


def test_a_failing_compiled_validator_falls_back_to_jsonschema(
    monkeypatch: pytest.MonkeyPatch, documents: list[tuple[str, str, dict[str, Any]]]
) -> None:
    def broken(document: Any) -> bool:
        raise RecursionError("deep")

    label, name, doc = documents[0]
    monkeypatch.setitem(_schemas_compiled.VALIDATORS, name, broken)
    assert not schema.compiled_accepts(doc, name)
    schema.validate_document(doc, name, label, "manifest", ManifestError)  # jsonschema accepts
    doc = {**doc, "serial": -1}
    with pytest.raises(ManifestError, match="fails the schema at serial"):
        schema.validate_document(doc, name, label, "manifest", ManifestError)


# ------------------------------------------------------------------ start-up of the CLI

PROBE = """
import sys
from pybundle.cli import main
try:
    main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
else:
    code = 0
print("JSONSCHEMA", "jsonschema" in sys.modules, code, file=sys.stderr)
"""


def _probe(*args: str) -> tuple[bool, str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=300
    )
    line = [s for s in proc.stderr.splitlines() if s.startswith("JSONSCHEMA")][-1]
    _, imported, code = line.split()
    assert code in ("0", "None"), proc.stdout + proc.stderr
    return imported == "True", proc.stdout + proc.stderr


def test_verify_and_install_of_a_valid_bundle_never_import_jsonschema(
    tiny_bundle, key_files: tuple[Path, Path], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, pub = key_files
    bundle = tiny_bundle()
    imported, out = _probe("verify", str(bundle), "--trusted-key", str(pub))
    assert not imported, out
    dest = tmp_path / "installs"
    imported, out = _probe(
        "install", str(bundle), "--trusted-key", str(pub), "--install-dir", str(dest)
    )
    assert not imported, out
    # a second install of the same interpreter reads the first one's receipt
    imported, out = _probe(
        "install", str(bundle), "--trusted-key", str(pub), "--install-dir", str(dest), "--force"
    )
    assert not imported, out
