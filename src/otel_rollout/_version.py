"""The installed distribution's version (a leaf: imports nothing from the package)."""

from __future__ import annotations

from functools import cache

DISTRIBUTION = "otel-rollout"


@cache
def package_version() -> str:
    """The installed version of ``otel-rollout``, ``"0+unknown"`` when run from a bare tree.

    ``importlib.metadata`` is imported here, on first use: it costs command start-up
    tens of milliseconds that no command but ``--version`` needs.
    """
    import importlib.metadata

    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
