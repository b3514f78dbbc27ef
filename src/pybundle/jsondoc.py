"""Strict decoding of the JSON documents pybundle reads back (manifests, receipts, state files).

Python's :func:`json.loads` is lenient where a signed or security-relevant document must not be:
it accepts ``NaN``/``Infinity``, reads ``1.0`` where an integer is meant (JSON Schema then
counts it as an integer, RFC 8259 leaves number semantics to the reader), keeps the last of
duplicate keys (two readers could then disagree on what a signed manifest says), and raises
RecursionError on deeply nested input. :func:`load_json` refuses all of these with one typed
error that names the document.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from pybundle.errors import PybundleError

MAX_DEPTH = 32
"""Deepest nesting of arrays and objects accepted; pybundle's own documents use at most 5."""


class _Refused(ValueError):
    pass


def _no_float(text: str) -> NoReturn:
    raise _Refused(f"the number {text[:40]} is not an integer (pybundle documents hold integers)")


def _no_constant(text: str) -> NoReturn:
    raise _Refused(f"{text} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise _Refused(f"the key {key[:80]!r} appears twice in one object")
        doc[key] = value
    return doc


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _survey(value: Any) -> tuple[int, tuple[str, str] | None]:
    """Nesting depth of a decoded document, and the first control character found in one of
    its strings (keys included) with the JSON path where it is, or None. Iterative, so it
    cannot recurse too deeply."""
    deepest = 0
    found: tuple[str, str] | None = None
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, level, path = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, level)
            for key, v in item.items():
                where = f"{path}/{key}" if path else str(key)
                if found is None and (m := _CONTROL.search(key)):
                    found = (m.group(), f"the key {where!r}")
                stack.append((v, level + 1, where))
        elif isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((v, level + 1, f"{path}/{i}") for i, v in enumerate(item))
        elif isinstance(item, str) and found is None and (m := _CONTROL.search(item)):
            found = (m.group(), f"the string at {path or '(top level)'}")
    return deepest, found


def load_json(
    data: bytes,
    source: str,
    what: str,
    error: type[PybundleError],
    *,
    max_bytes: int,
    integers_only: bool = True,
) -> Any:
    """Decode ``data`` (UTF-8 JSON, at most ``max_bytes`` bytes) strictly.

    Refused, as ``error`` with a one-line message ``"<source>: <what> ..."``: more than
    ``max_bytes``, invalid UTF-8 or JSON, a non-integer number (``1.0``, ``1e3``; unless
    ``integers_only`` is False, for documents that check each value's type themselves),
    ``NaN`` or ``Infinity``, a key repeated in one object, nesting deeper than MAX_DEPTH levels,
    a string (or key) holding a control character (C0, DEL or C1: none belongs in pybundle's
    documents, and JSON Schema patterns checked with Python's ``re`` let ``$`` match before a
    final newline).
    Returns the decoded document (dicts, lists, str, int, float, bool, None).
    """
    if len(data) > max_bytes:
        raise error(f"{source}: {what} is {len(data)} bytes, more than the {max_bytes} allowed")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{source}: {what} is not valid UTF-8: {exc.reason} at byte {exc.start}"
        ) from None
    try:
        doc = json.loads(
            text,
            parse_float=_no_float if integers_only else float,
            parse_constant=_no_constant,
            object_pairs_hook=_unique_keys,
        )
    except _Refused as exc:
        raise error(f"{source}: {what} is refused: {exc}") from None
    except RecursionError:
        raise error(f"{source}: {what} is nested too deeply") from None
    except ValueError as exc:
        raise error(f"{source}: {what} is not valid JSON: {exc}") from None
    depth, control = _survey(doc)
    if depth > MAX_DEPTH:
        raise error(f"{source}: {what} is nested more than {MAX_DEPTH} levels deep")
    if control is not None:
        raise error(
            f"{source}: {what} is refused: a string holds the control character {control!r}"
        )
    return doc
