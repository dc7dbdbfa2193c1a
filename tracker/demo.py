"""The end-to-end demo ride (see docs/ARCHITECTURE.md)."""
