"""Trainyard's Python engine: drives Ultralytics for one job and reports what
happens as JSON lines on a dedicated file descriptor (see DESIGN.md)."""

__version__ = "0.1.0"
