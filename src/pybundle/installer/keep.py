"""``install --keep-installer``: after installing from a self-installing bundle, keep a working
``pybundle`` command on the host, built only from what the file carries.

Where, and how (the way pipx and uv place their tools):

* the environment is a venv under ``<user data dir>/pybundle/installer/`` (e.g.
  ``~/.local/share/pybundle/installer/pybundle-0.1.0-XXXXXXXX``), made by the just-installed
  interpreter of the Python version the carried wheels are for (``python -I -m venv``, whose
  pip comes from the interpreter's own ``ensurepip``, offline);
* its pip installs the carried wheels, copied out of the verified bundle and re-hashed against
  the signed manifest, with ``--isolated --no-index`` (no index, no user configuration): the
  dependencies first (pip checks they are complete), then pybundle's own wheel ``--no-deps``
  (the online side's ``requests``/``tqdm`` are not carried: the kept pybundle installs,
  verifies and inspects; ``bundle`` needs a full install);
* ``pybundle`` is linked into the bin dir (``$PYBUNDLE_BIN_DIR`` or ``~/.local/bin``) with
  :mod:`pybundle.installer.links`, which never replaces a file or link pybundle did not make.
  The environment's ``pybundle-installer.json`` records the link, as a receipt does for an
  interpreter; a later ``--keep-installer`` moves the link to its new environment and removes
  the older environments that this file marks as pybundle's.

The environment runs on that interpreter: uninstalling or moving the interpreter breaks it (run
``--keep-installer`` again).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import platformdirs

from pybundle import __version__
from pybundle.errors import (
    AlreadyExistsError,
    PlatformMismatchError,
    StorageError,
    UsageError,
)
from pybundle.hashing import check_digest
from pybundle.installer.install import InstallResult, LinkRequest, select_artifacts
from pybundle.installer.links import LinkOwner, inside, inspect_link, link_target, make_link
from pybundle.installer.pipsteps import make_venv, offline_pip, run_step
from pybundle.installer.source import BundleSource
from pybundle.installer.verify import verify_manifest
from pybundle.manifest import Artifact
from pybundle.selfinstall.section import Bootstrap, CarriedFile
from pybundle.signing import PublicKey
from pybundle.targets import host_target
from pybundle.versions import PythonRequest, VersionRequest

__all__ = ["KeepPlan", "KeptInstaller", "installer_root", "keep_installer", "plan_keep"]

MARKER = "pybundle-installer.json"
"""The file that makes an environment pybundle's (it records the links made to it)."""
ENV_PREFIX = "pybundle-"
COMMAND = "pybundle"


def installer_root() -> Path:
    """``<user data dir>/pybundle/installer`` (``$XDG_DATA_HOME`` or ``~/.local/share``)."""
    return Path(platformdirs.user_data_dir("pybundle")) / "installer"


@dataclass(frozen=True)
class KeepPlan:
    """What :func:`plan_keep` checked before the install: the bundle, its trusted keys, this
    host's :class:`Bootstrap` (the Python version and the wheels) and the carried files."""

    bundle: Path
    trusted: tuple[PublicKey, ...]
    bootstrap: Bootstrap
    files: dict[str, CarriedFile]


@dataclass(frozen=True)
class KeptInstaller:
    """The kept pybundle: its environment ``env``, the ``python`` it runs on, the ``link`` made
    (None with ``--no-bin``) and the ``version`` of pybundle."""

    env: Path
    python: Path
    link: Optional[Path]
    version: str

    @property
    def command(self) -> Path:
        """``<env>/bin/pybundle``."""
        return self.env / "bin" / COMMAND

    def to_json(self) -> dict[str, Any]:
        """``{"env", "python", "command", "link", "version"}`` (paths as strings)."""
        return {
            "env": str(self.env),
            "python": str(self.python),
            "command": str(self.command),
            "link": str(self.link) if self.link else None,
            "version": self.version,
        }


def _matches(artifact: Artifact, bootstrap: Bootstrap) -> bool:
    return (
        artifact.implementation == "cpython"
        and artifact.variant == "default"
        and artifact.version.startswith(bootstrap.python + ".")
    )


def plan_keep(
    bundle: Path,
    trusted: Sequence[PublicKey],
    versions: Sequence[VersionRequest | PythonRequest] = (),
    *,
    prefix: Optional[Path] = None,
    layout: str = "pybundle",
) -> KeepPlan:
    """Check, before anything is installed, that ``--keep-installer`` can be done: the bundle
    is signed by a trusted key and carries an installer for this host, and the interpreters
    selected by ``versions`` include one of the Python version its wheels are for.

    Raises the errors of :func:`pybundle.installer.verify.verify_manifest`, UsageError (a plain
    bundle, or no interpreter of the right version selected), PlatformMismatchError.
    """
    del prefix, layout  # any destination and layout: the environment uses the installed path
    with BundleSource(bundle) as source:
        manifest = verify_manifest(source, trusted).manifest
    section = manifest.self_install
    if section is None:
        raise UsageError(
            f"{bundle} carries no installer: --keep-installer needs a bundle made with "
            "pybundle bundle --self-installing"
        )
    host = host_target()
    bootstrap = section.bootstrap_for(host)
    if bootstrap is None:
        raise PlatformMismatchError(
            f"{bundle} carries no installer for this host ({host.key}); it has: "
            + ", ".join(sorted(b.key for b in section.bootstraps))
        )
    selected = select_artifacts(manifest, versions, None, str(bundle))
    if not any(_matches(a, bootstrap) for a in selected):
        raise UsageError(
            f"--keep-installer builds pybundle's environment with CPython {bootstrap.python} "
            f"(the Python the wheels in {bundle} are for), and this install does not include "
            f"it: add {bootstrap.python} to --versions"
        )
    return KeepPlan(
        bundle=bundle,
        trusted=tuple(trusted),
        bootstrap=bootstrap,
        files={f.member: f for f in section.files},
    )


def _copy_wheels(plan: KeepPlan, dest: Path) -> list[Path]:
    """The bootstrap's wheels, copied out of the bundle (signature checked again) into
    ``dest`` and re-hashed against the manifest on the way; pybundle's own first."""
    paths = []
    with BundleSource(plan.bundle) as source:
        manifest = verify_manifest(source, plan.trusted).manifest
        section = manifest.self_install
        if section is None or section.bootstrap_for(host_target()) != plan.bootstrap:
            raise UsageError(f"{plan.bundle}: changed during the install; nothing was kept")
        for member in plan.bootstrap.wheels:
            record = plan.files[member]
            path = dest / record.file_name
            with source.open_member(member, record.size) as stream, open(path, "wb") as out:
                while block := stream.read(1024 * 1024):
                    out.write(block)
                check_digest(
                    f"{plan.bundle}: {member}", stream.finish(), record.sha256, record.size
                )
            paths.append(path)
    return paths


def _owner(root: Path) -> LinkOwner:
    """A link is the kept installer's when the marker of the environment it points into
    records it."""

    def owner(path: Path) -> Optional[str]:
        target = link_target(path)
        if target is None or not inside(target, str(root)):
            return None
        rel = os.path.relpath(target, root).split(os.sep)[0]
        env = root / rel
        marker = _read_marker(env)
        if marker is None:
            return None
        links = marker.get("links")
        if isinstance(links, list) and os.path.abspath(path) in links:
            return str(env)
        return None

    return owner


def _read_marker(env: Path) -> Optional[dict[str, Any]]:
    try:
        data = json.loads((env / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_marker(env: Path, doc: dict[str, Any]) -> None:
    tmp = env / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, env / MARKER)


def keep_installer(
    plan: KeepPlan,
    results: Sequence[InstallResult],
    *,
    links: Optional[LinkRequest],
    on_warning: Optional[Callable[[str], None]] = None,
) -> KeptInstaller:
    """Build the environment (see the module docstring) on the installed interpreter of
    ``plan``'s Python version among ``results``, link ``pybundle`` into ``links``' directory
    (none when ``links`` is None), and remove older kept environments.

    Raises StorageError (a step failed: the new environment is removed), AlreadyExistsError
    (the bin dir holds a ``pybundle`` that pybundle did not make: the environment is kept and
    the message names its command), UsageError.
    """
    chosen = [r for r in results if _matches(r.artifact, plan.bootstrap)]
    if not chosen:
        raise UsageError(
            f"--keep-installer: no CPython {plan.bootstrap.python} was installed to run pybundle"
        )
    minor = plan.bootstrap.python
    python = chosen[-1].path / "bin" / f"python{minor}"
    root = installer_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        env = Path(tempfile.mkdtemp(prefix=f"{ENV_PREFIX}{__version__}-", dir=root))
        wheels_dir = Path(tempfile.mkdtemp(prefix=".wheels-", dir=root))
    except OSError as exc:
        raise StorageError(f"{root}: cannot create pybundle's environment: {exc}") from exc
    try:
        os.chmod(env, 0o755)
        wheels = _copy_wheels(plan, wheels_dir)
        pip = offline_pip(make_venv(python, env), wheels_dir)
        run_step([*pip, *map(str, wheels[1:])], "install the wheels")
        run_step([*pip, "--no-deps", str(wheels[0])], "install pybundle's wheel")
        run_step([str(env / "bin" / COMMAND), "--version"], "run the kept pybundle")
        _write_marker(
            env,
            {
                "pybundle": __version__,
                "python": str(python),
                "bundle": str(plan.bundle.absolute()),
                "links": [],
            },
        )
    except BaseException:
        shutil.rmtree(env, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(wheels_dir, ignore_errors=True)
    link = _link(env, root, links)
    _remove_older(root, env, on_warning)
    return KeptInstaller(env, python, link, __version__)


def _link(env: Path, root: Path, links: Optional[LinkRequest]) -> Optional[Path]:
    """Link ``pybundle`` to the environment (records it in the marker first, as a receipt
    lists a link before it is made)."""
    if links is None:
        return None
    path = links.directory / COMMAND
    target = str(env / "bin" / COMMAND)
    owner = _owner(root)
    try:
        plan = inspect_link(path, target, force=True, owner=owner)
    except AlreadyExistsError as exc:
        raise AlreadyExistsError(f"{exc.message}; the kept pybundle is {target}") from exc
    marker = _read_marker(env) or {}
    marker["links"] = [str(path)]
    _write_marker(env, marker)
    make_link(plan, owner=owner)
    return path


def _remove_older(root: Path, keep: Path, on_warning: Optional[Callable[[str], None]]) -> None:
    """Remove the environments under ``root`` that pybundle kept before (marker present) and
    that no link of theirs still points into."""
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return
    for env in entries:
        if env == keep or not env.name.startswith(ENV_PREFIX) or env.is_symlink():
            continue
        marker = _read_marker(env)
        if marker is None:
            continue
        still = [
            link
            for link in marker.get("links") or []
            if isinstance(link, str) and (t := link_target(Path(link))) and inside(t, str(env))
        ]
        if still:
            continue
        try:
            shutil.rmtree(env)
        except OSError as exc:
            if on_warning is not None:
                on_warning(f"{env}: cannot remove an older kept pybundle: {exc.strerror}")
