"""tracker: a Raspberry Pi live GPS tracker that streams rides to Map My Tracks (API v3).

Read docs/ARCHITECTURE.md first: it is the map of the package and of the data flow.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tracker")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
