"""The real Prometheus Alertmanager (Debian's prometheus-alertmanager), started on loopback.

`running_alertmanager(directory, config_yaml)` writes the config, starts the binary with
clustering off and a private storage path, waits for /-/ready, yields its base URL and
stops exactly the process it started.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_servers import running_server
from sshd import free_port

BINARIES = ("prometheus-alertmanager", "alertmanager")

#: A root route to the receiver `hook` that notifies fast (group_wait 100ms, group_interval
#: 1s) and does not repeat during a test; a config adds its routes, receivers and rules.
HOOK_ROUTE = """route:
  receiver: hook
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
"""


def alertmanager_binary() -> str | None:
    for name in BINARIES:
        found = shutil.which(name) or (
            f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
        )
        if found:
            return found
    return None


@contextmanager
def running_alertmanager(directory: Path, config_yaml: str) -> Iterator[str]:
    binary = alertmanager_binary()
    if binary is None:
        raise RuntimeError("prometheus-alertmanager is missing: scripts/test.sh installs it")
    config = directory / "alertmanager.yml"
    directory.mkdir(parents=True, exist_ok=True)
    config.write_text(config_yaml)
    port = free_port()
    args = [
        f"--config.file={config}",
        f"--storage.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=debug",
    ]
    with running_server(Path(binary).name, args, directory, "/-/ready", port) as url:
        yield url


def active_alerts(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as response:
        return json.loads(response.read())


def active_alertmanager_names(url: str) -> list[str]:
    """The alertnames of the alerts active in Alertmanager, sorted."""
    return sorted(alert["labels"]["alertname"] for alert in active_alerts(url))


def alert_groups(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts/groups", timeout=5) as response:
        return json.loads(response.read())
