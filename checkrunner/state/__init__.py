"""State that survives between runs, in an embedded SQLite database on the control node.

`db.py` opens it (and imports sqlite3), so it is imported only by runs that need state.
"""
