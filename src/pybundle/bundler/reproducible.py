"""Reproducible bundles: with ``SOURCE_DATE_EPOCH`` set (the reproducible-builds.org
convention: Unix seconds), the same inputs and options give the same bytes.

What varies from run to run otherwise, and how it is fixed:

- the created time is ``SOURCE_DATE_EPOCH`` (:func:`source_date_epoch`), and so are the
  serial (which defaults to the created time), the zip members' times, the solid stream's
  entry times and the base of ``--expires-in``;
- the bundle id, random otherwise, is derived from the manifest (:func:`bundle_id_for`):
  a UUID made of the sha256 of the manifest's canonical JSON with the id left out, so it
  names exactly these inputs;
- member order, modes and the zip and 7z headers are fixed by the writers
  (:mod:`pybundle.bundler.pack`, :mod:`pybundle.bundler.solid`); ``--from-prefix`` archives
  are made deterministically (:mod:`pybundle.bundler.prefix`: sorted members, owner 0, whole
  second mtimes, gzip header time 0, zstd's output does not depend on its thread count).

Ed25519 signatures are deterministic (RFC 8032), so with the same key the signature is the
same too.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from typing import Optional

from pybundle.errors import UsageError
from pybundle.manifest import Manifest

ENV = "SOURCE_DATE_EPOCH"


def source_date_epoch() -> Optional[datetime]:
    """``$SOURCE_DATE_EPOCH`` as an aware UTC datetime, or None when unset or empty.
    Raises UsageError when it is not a whole number of seconds from 0 to 2**33 - 1."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) >= 1 << 33:
        raise UsageError(f"{ENV}={text!r}: must be a whole number of seconds since 1970")
    return datetime.fromtimestamp(int(text), timezone.utc)


def now() -> datetime:
    """The bundle's created time: ``SOURCE_DATE_EPOCH`` when set, else the clock (UTC, whole
    seconds)."""
    return (source_date_epoch() or datetime.now(timezone.utc)).replace(microsecond=0)


def bundle_id_for(manifest: Manifest) -> str:
    """A bundle id derived from everything else in ``manifest``: the sha256 of its canonical
    JSON (sorted keys, bundle id blanked) made into a UUID (version 8, RFC 9562's form for
    custom UUIDs, lower-case hex)."""
    doc = replace(manifest, bundle_id="00000000-0000-0000-0000-000000000000").to_json()
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = bytearray(hashlib.sha256(canonical.encode("ascii")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x80  # version 8
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 9562 variant
    return str(uuid.UUID(bytes=bytes(digest)))
