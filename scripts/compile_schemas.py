"""Compile pybundle's JSON Schemas into plain Python validators: src/pybundle/_schemas_compiled.py.

Run ``make schemas`` (or ``python scripts/compile_schemas.py``) after changing or adding a schema
file; tests/test_schema_compiled.py regenerates the module and fails while the committed one
differs. The schemas compiled are every file the registry of :mod:`pybundle.schema` names
(``MANIFEST_SCHEMAS``, ``SCHEMA_FILE``, ``RECEIPT_SCHEMA_FILE``).

The schema files stay the source of truth and jsonschema the judge: the installer runs a
compiled validator first and, when it rejects a document (or fails), validates the document
again with jsonschema, which decides and words the error. So a compiled validator may reject
more than jsonschema would (that only costs time) but must never accept a document jsonschema
rejects. To keep that true this compiler knows only a small set of draft 2020-12 keywords,
implements each exactly as jsonschema 4 does for the values :func:`json.loads` returns
(``jsonschema._keywords``, ``jsonschema._types``, ``jsonschema._utils.equal``; exactness
matters under ``oneOf``, where a stricter branch could make the whole looser), and refuses to
compile a schema that uses any other keyword, a remote or non-pointer ``$ref``, or a nested
``$id``.

Why not fastjsonschema's ``compile_to_code``: it implements drafts 4, 6 and 7, so under draft
2020-12 it silently ignores keywords it does not know (``prefixItems``) and the keywords beside
a ``$ref`` (both false accepts), and its generated code imports fastjsonschema at run time.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "src" / "pybundle" / "schemas"
OUTPUT = ROOT / "src" / "pybundle" / "_schemas_compiled.py"
DRAFT = "https://json-schema.org/draft/2020-12/schema"

ANNOTATIONS = frozenset(
    {"title", "description", "$comment", "default", "examples", "deprecated", "readOnly",
     "writeOnly", "$defs"}
)  # fmt: skip
"""Keywords that never change whether a document is valid (``$defs`` holds subschemas that
count only where a ``$ref`` names them, and those are compiled there)."""
VALIDATION = frozenset(
    {"type", "const", "enum", "pattern", "minLength", "maxLength", "minimum", "maximum",
     "required", "properties", "additionalProperties", "items", "minItems", "maxItems",
     "oneOf", "$ref"}
)  # fmt: skip
"""The keywords this compiler implements; any other one in a schema stops it."""
ROOT_ONLY = frozenset({"$schema", "$id"})

TYPE_TESTS = {
    # jsonschema._types, draft 2020-12 type checker
    "string": "isinstance(x, str)",
    "object": "isinstance(x, dict)",
    "array": "isinstance(x, list)",
    "null": "x is None",
    "boolean": "isinstance(x, bool)",
    "integer": (
        "(isinstance(x, int) and not isinstance(x, bool)"
        " or isinstance(x, float) and x.is_integer())"
    ),
    "number": "(type(x) is int or type(x) is float or _other_number(x))",
}
IS_NUMBER = "(type(x) is int or type(x) is float or _other_number(x))"
"""jsonschema's "number": an instance of numbers.Number that is not a bool (``numbers`` is
imported only for a value that is neither an int nor a float, which JSON never decodes to)."""

HELPERS = '''
def _other_number(x: Any) -> bool:
    # isinstance(x, numbers.Number) and not a bool, for values other than int and float
    if isinstance(x, (str, list, dict, bool)) or x is None:
        return False
    import numbers

    return isinstance(x, numbers.Number)


class _Pattern:
    """A regex compiled at its first search, which rebinds the module global that names it to
    the compiled pattern (so a validation compiles only the patterns it uses)."""

    __slots__ = ("name", "pattern")

    def __init__(self, name: str, pattern: str) -> None:
        self.name = name
        self.pattern = pattern

    def search(self, text: str) -> Any:
        compiled = re.compile(self.pattern)
        globals()[self.name] = compiled
        return compiled.search(text)

'''


class SchemaCompileError(Exception):
    """The schema uses something this compiler does not implement exactly."""


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _equal_test(value: Any, where: str) -> str:
    """Python test that ``x`` equals ``value`` as jsonschema._utils.equal decides, for scalars."""
    if value is None:
        return "x is None"
    if value is True or value is False:
        return f"x is {value!r}"
    if isinstance(value, str):
        return f"(isinstance(x, str) and x == {value!r})"
    if isinstance(value, int):
        return f"({IS_NUMBER} and x == {value!r})"
    raise SchemaCompileError(f"{where}: const/enum value {value!r}: not a string, int, bool, null")


class Compiler:
    """Compiles the schemas of one module; functions and regexes are numbered module-wide."""

    def __init__(self) -> None:
        self.functions: list[str] = []
        self.patterns: dict[str, str] = {}
        self.constants: list[str] = []
        self.count = 0

    def compile_schema(self, name: str, schema: dict[str, Any]) -> str:
        """Compile the schema file ``name``; return the name of its top function."""
        if schema.get("$schema") != DRAFT:
            raise SchemaCompileError(f"{name}: $schema is not {DRAFT}")
        self.name = name
        self.root = schema
        self.by_pointer: dict[str, str] = {}
        return self.node(schema, "#")

    def _new_name(self) -> str:
        self.count += 1
        return f"_v{self.count}"

    def _pattern(self, pattern: str) -> str:
        if pattern not in self.patterns:
            self.patterns[pattern] = f"_P{len(self.patterns) + 1}"
        return self.patterns[pattern]

    def _constant(self, text: str) -> str:
        self.constants.append(text)
        return f"_C{len(self.constants)}"

    def _resolve(self, ref: str, where: str) -> tuple[Any, str]:
        if not ref.startswith("#"):
            raise SchemaCompileError(f"{where}: $ref {ref!r} is not a local JSON pointer")
        node: Any = self.root
        tokens = unquote(ref[1:]).split("/")
        if tokens[0] != "":
            raise SchemaCompileError(f"{where}: $ref {ref!r} is not a JSON pointer")
        pointer = "#"
        for raw in tokens[1:]:
            token = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise SchemaCompileError(f"{where}: $ref {ref!r} names nothing")
            pointer += "/" + _escape(token)
        return node, pointer

    def node(self, schema: Any, pointer: str) -> str:
        """Compile the subschema at ``pointer`` (once); return its function's name."""
        if pointer in self.by_pointer:
            return self.by_pointer[pointer]
        fname = self._new_name()
        self.by_pointer[pointer] = fname
        where = f"{self.name} {pointer}"
        if schema is True or schema is False:
            self.functions.append(f"def {fname}(x: Any) -> bool:\n    return {schema!r}\n")
            return fname
        if not isinstance(schema, dict):
            raise SchemaCompileError(f"{where}: a schema must be an object or a boolean")
        known = ANNOTATIONS | VALIDATION | (ROOT_ONLY if pointer == "#" else frozenset())
        unknown = sorted(set(schema) - known)
        if unknown:
            raise SchemaCompileError(f"{where}: keyword(s) {unknown} not implemented")
        body: list[str] = []

        def check(condition: str) -> None:
            body.append(f"    if {condition}:\n        return False")

        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not types or any(t not in TYPE_TESTS for t in types):
                raise SchemaCompileError(f"{where}: type {schema['type']!r} not implemented")
            check("not (" + " or ".join(TYPE_TESTS[t] for t in types) + ")")
        if "const" in schema:
            check("not " + _equal_test(schema["const"], where))
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise SchemaCompileError(f"{where}: enum must be a non-empty array")
            check("not (" + " or ".join(_equal_test(v, where) for v in values) + ")")
        for key, test in (("minLength", "<"), ("maxLength", ">")):
            if key in schema:
                bound = self._bound(schema[key], where, key)
                check(f"isinstance(x, str) and len(x) {test} {bound}")
        if "pattern" in schema:
            pattern = schema["pattern"]
            if not isinstance(pattern, str):
                raise SchemaCompileError(f"{where}: pattern must be a string")
            check(f"isinstance(x, str) and {self._pattern(pattern)}.search(x) is None")
        for key, test in (("minimum", "<"), ("maximum", ">")):
            if key in schema:
                bound = self._bound(schema[key], where, key)
                check(f"{IS_NUMBER} and x {test} {bound}")
        if "required" in schema:
            required = schema["required"]
            if not isinstance(required, list) or not all(isinstance(k, str) for k in required):
                raise SchemaCompileError(f"{where}: required must be an array of strings")
            if required:
                keys = self._constant(f"frozenset({sorted(set(required))!r})")
                check(f"isinstance(x, dict) and not x.keys() >= {keys}")
        properties = schema.get("properties", {})
        if not isinstance(properties, dict):
            raise SchemaCompileError(f"{where}: properties must be an object")
        if "additionalProperties" in schema:
            extra = schema["additionalProperties"]
            if extra is False:
                keys = self._constant(f"frozenset({sorted(properties)!r})")
                check(f"isinstance(x, dict) and not x.keys() <= {keys}")
            elif extra is not True:
                raise SchemaCompileError(f"{where}: additionalProperties other than a boolean")
        if properties:
            lines = ["    if isinstance(x, dict):"]
            for key, sub in properties.items():
                fn = self.node(sub, f"{pointer}/properties/{_escape(key)}")
                lines.append(f"        if {key!r} in x and not {fn}(x[{key!r}]):")
                lines.append("            return False")
            body.append("\n".join(lines))
        for key, test in (("minItems", "<"), ("maxItems", ">")):
            if key in schema:
                bound = self._bound(schema[key], where, key)
                check(f"isinstance(x, list) and len(x) {test} {bound}")
        if "items" in schema:
            fn = self.node(schema["items"], f"{pointer}/items")
            body.append(
                f"    if isinstance(x, list):\n        for item in x:\n"
                f"            if not {fn}(item):\n                return False"
            )
        if "oneOf" in schema:
            branches = schema["oneOf"]
            if not isinstance(branches, list) or not branches:
                raise SchemaCompileError(f"{where}: oneOf must be a non-empty array")
            fns = [self.node(b, f"{pointer}/oneOf/{i}") for i, b in enumerate(branches)]
            # jsonschema: valid when exactly one branch is valid (the branches are exact)
            check("(" + " + ".join(f"{fn}(x)" for fn in fns) + ") != 1")
        if "$ref" in schema:
            ref = schema["$ref"]
            if not isinstance(ref, str):
                raise SchemaCompileError(f"{where}: $ref must be a string")
            target, target_pointer = self._resolve(ref, where)
            check(f"not {self.node(target, target_pointer)}(x)")
        code = "\n".join([f"def {fname}(x: Any) -> bool:", *body, "    return True", ""])
        self.functions.append(code)
        return fname

    @staticmethod
    def _bound(value: Any, where: str, key: str) -> int:
        counts = key in ("minLength", "maxLength", "minItems", "maxItems")
        if not isinstance(value, int) or isinstance(value, bool) or (counts and value < 0):
            raise SchemaCompileError(f"{where}: {key} must be a (non-negative) integer")
        return value


def registry() -> list[str]:
    """The schema files pybundle reads: every one its schema registry names, sorted."""
    sys.path.insert(0, str(ROOT / "src"))
    from pybundle import schema

    names = {schema.SCHEMA_FILE, schema.RECEIPT_SCHEMA_FILE, *schema.MANIFEST_SCHEMAS.values()}
    return sorted(names)


def generate(schema_dir: Path = SCHEMA_DIR, names: list[str] | None = None) -> str:
    """Return the source of the compiled module for ``names`` (default: :func:`registry`).

    Raises SchemaCompileError when a schema uses what this compiler does not implement.
    """
    compiler = Compiler()
    tops: dict[str, str] = {}
    digests: dict[str, str] = {}
    for name in names if names is not None else registry():
        raw = (schema_dir / name).read_bytes()
        digests[name] = hashlib.sha256(raw).hexdigest()
        tops[name] = compiler.compile_schema(name, json.loads(raw))
    out = [
        "# Generated by scripts/compile_schemas.py from src/pybundle/schemas/: do not edit.",
        "# Regenerate with `make schemas` after changing or adding a schema: tests fail till then.",
        "# mypy: ignore-errors",
        '"""Validators compiled ahead of time from pybundle\'s JSON Schemas: the fast accept path.',
        "",
        "``VALIDATORS[name](document)`` is True when the decoded ``document`` is valid against the",
        "schema file ``name`` and False otherwise, without importing jsonschema. The schema files",
        "and jsonschema stay the judge: :mod:`pybundle.schema` asks jsonschema whenever this says",
        "False. ``SCHEMA_SHA256`` holds the sha256 of each schema file compiled.",
        '"""',
        "",
        "import re",
        "from typing import Any, Callable",
        "",
        "SCHEMA_SHA256 = {",
        *(f"    {name!r}: {digest!r}," for name, digest in digests.items()),
        "}",
        "",
        HELPERS,
        *(f"{var} = _Pattern({var!r}, {pattern!r})" for pattern, var in compiler.patterns.items()),
        *(f"_C{i} = {text}" for i, text in enumerate(compiler.constants, 1)),
        "",
        "",
        "\n\n".join(compiler.functions),
        "",
        "VALIDATORS: dict[str, Callable[[Any], bool]] = {",
        *(f"    {name!r}: {fn}," for name, fn in tops.items()),
        "}",
        "",
    ]
    return "\n".join(out)


def main() -> int:
    """Write src/pybundle/_schemas_compiled.py; with --check, only say whether it is current."""
    code = generate()
    if "--check" in sys.argv[1:]:
        current = OUTPUT.read_text("utf-8") if OUTPUT.exists() else ""
        if current != code:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run make schemas", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(code, "utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
