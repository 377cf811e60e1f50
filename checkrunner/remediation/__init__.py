"""Self-healing: handlers that checks `notify:` run on a host when the check's alert fires,
behind guard rails (guard.py), each action audited (state/actions.py)."""
