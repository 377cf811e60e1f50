"""The real Prometheus servers (Debian's prometheus, prometheus-node-exporter and
prometheus-pushgateway), each started on a free loopback port with its own temp dir.

Each `running_*` context manager starts the binary, waits until it answers, yields its base
URL and stops exactly the process it started. `query(url, promql)` asks a Prometheus server's
HTTP query API; `scrape(url)` reads an exposition as families (prometheus_client's parser).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from sshd import free_port


def binary(name: str) -> str:
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
    )
    if found is None:
        raise RuntimeError(f"{name} is missing: scripts/test.sh installs it")
    return found


@contextmanager
def running_server(
    name: str, args: list[str], directory: Path, ready_path: str, port: int
) -> Iterator[str]:
    """Start the binary `name` on 127.0.0.1:`port`, wait until `ready_path` answers, yield its
    base URL, stop exactly the process it started (also the Alertmanager's fixture's)."""
    directory.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    log_path = directory / f"{name}.log"
    log = log_path.open("w")
    process = subprocess.Popen([binary(name), *args], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(f"{url}{ready_path}", process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{log_path.stem} exited: " + log_path.read_text()[-2000:])
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # up, and asking who we are (a web config with basic auth)
                return
            time.sleep(0.1)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout} s: " + log_path.read_text()[-2000:])


@contextmanager
def running_node_exporter(
    directory: Path,
    textfile_dir: Path,
    collectors: tuple[str, ...] = (),
    exporter_metrics: bool = True,
) -> Iterator[str]:
    """node_exporter with only its textfile collector and `collectors` (pressure, ...);
    without `exporter_metrics` its own go_*/process_* series are left out too."""
    port = free_port()
    args = [
        f"--web.listen-address=127.0.0.1:{port}",
        "--collector.disable-defaults",
        "--collector.textfile",
        f"--collector.textfile.directory={textfile_dir}",
        *(f"--collector.{name}" for name in collectors),
    ]
    if not exporter_metrics:
        args.append("--web.disable-exporter-metrics")
    with running_server("prometheus-node-exporter", args, directory, "/metrics", port) as url:
        yield url


@contextmanager
def running_pushgateway(
    directory: Path, port: int | None = None, web_config: Path | None = None
) -> Iterator[str]:
    """A Pushgateway; give `port` to start one again where an earlier one listened, and
    `web_config` for its exporter-toolkit web config (basic auth: /-/ready needs it too,
    so readiness is seen as its 401)."""
    port = port or free_port()
    # Debian's default persistence file is shared (/var/lib/prometheus): an empty one keeps
    # this gateway's groups in its memory only, gone when it stops.
    args = [f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="]
    if web_config is not None:
        args.append(f"--web.config.file={web_config}")
    with running_server("prometheus-pushgateway", args, directory, "/-/ready", port) as url:
        yield url


@contextmanager
def running_prometheus(directory: Path, scrape_configs: str) -> Iterator[str]:
    """A Prometheus server that scrapes every second; `scrape_configs` is the YAML list
    under `scrape_configs:` (indented by two spaces)."""
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{scrape_configs}"
    )
    args = [
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with running_server("prometheus", args, directory, "/-/ready", port) as url:
        yield url


def query(url: str, promql: str) -> list[dict]:
    """The instant vector `promql` evaluates to now: [{"metric": labels, "value": [t, "v"]}]."""
    address = f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(address, timeout=10) as response:
        answer = json.loads(response.read())
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def targets(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/v1/targets", timeout=10) as response:
        return json.loads(response.read())["data"]["activeTargets"]


def get(url: str, auth: tuple[str, str] | None = None, context=None) -> tuple[int, str]:
    """(status, body) of a GET; an HTTP error status is returned, not raised."""
    request = urllib.request.Request(url)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(url: str, **options) -> dict:
    """name -> family of the exposition at `url` (prometheus_client's parser)."""
    status, body = get(url, **options)
    assert status == 200, (status, body)
    return {family.name: family for family in text_string_to_metric_families(body)}
