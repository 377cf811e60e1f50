"""State that survives between runs: an embedded SQLite database on the control node, or a
PostgreSQL database that several runners share (`--state postgresql://...`).

`db.py` opens it (and imports sqlite3; postgres.py imports psycopg only for a postgresql://
URL), so it is imported only by runs that need state.
"""
