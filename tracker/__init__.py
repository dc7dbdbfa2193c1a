"""tracker: a Raspberry Pi live GPS tracker that streams rides to Map My Tracks (API v3).

Read docs/ARCHITECTURE.md first: it is the map of the package and of the data flow.
"""

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """``tracker.__version__``, looked up when asked: importlib.metadata costs ~30 ms, and every
    command (``tracker run`` on a Pi Zero included) imports this package."""
    if name != "__version__":
        raise AttributeError(f"module 'tracker' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tracker")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"
