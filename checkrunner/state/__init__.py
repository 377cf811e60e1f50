"""State that survives between runs, in an embedded SQLite database on the control node."""

from checkrunner.state.db import StateDB, default_state_path, open_state

__all__ = ["StateDB", "default_state_path", "open_state"]
