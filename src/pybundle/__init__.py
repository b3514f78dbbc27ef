"""pybundle: bundle python-build-standalone interpreters into one signed file; install offline."""

from __future__ import annotations

__version__ = "0.1.0"
