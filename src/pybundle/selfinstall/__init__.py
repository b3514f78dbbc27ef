"""Self-installing bundles: the pieces a ``.pybundle`` file carries to install itself on a host
that has no Python and no pybundle.

A self-installing file (``pybundle bundle --self-installing``) is at once a POSIX ``sh`` script
(``stub.sh``, rendered by :mod:`pybundle.bundler.selfinstall`) and a zip (the bundle, whose
offsets are absolute, as ``zip -A`` leaves a self-extracting zip). Besides the interpreter
archives it carries, as members listed and hashed in the signed manifest
(:mod:`pybundle.selfinstall.section`):

* ``wheels/*.whl``: pybundle's own wheel and the wheels of what the install side imports, for
  each Linux (arch, libc) the bundle targets and the Python version of its bootstrap;
* ``__main__.py``: what ``python3 FILE ...`` runs on a host that has a Python >= 3.9.

For each (arch, libc) one of the bundle's own ``tar.gz`` interpreters is the bootstrap: the stub
unpacks it with ``tail``/``head``/``gzip``/``tar`` into a private temporary directory, checks its
sha256, and runs the bundled pybundle with it (:mod:`pybundle.selfinstall.boot`), which verifies
the manifest's signature against the host's trusted keys exactly as ``pybundle install`` does.

This package is shared by both sides: it imports neither :mod:`pybundle.bundler` nor the online
side's libraries.
"""
