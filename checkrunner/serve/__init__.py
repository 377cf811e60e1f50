"""Watch mode: the long-running process around the runner (its rounds, signals and reloads)
and its HTTP face (/metrics, /healthz, /-/ready, /api/v1/results)."""
