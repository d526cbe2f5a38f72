"""The installed distribution's version (a leaf: imports nothing from the package)."""

from __future__ import annotations

import importlib.metadata
from functools import cache

DISTRIBUTION = "otel-rollout"


@cache
def package_version() -> str:
    """The installed version of ``otel-rollout``, ``"0+unknown"`` when run from a bare tree."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
