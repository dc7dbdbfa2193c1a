"""Wires sources, core and adapters into the running service (see docs/ARCHITECTURE.md)."""
