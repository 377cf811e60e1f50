"""`--push URL`: a run's metrics to a Prometheus Pushgateway, through the state database's
push outbox (state/pushes.py), so that an edge runner on a bad network loses nothing.

The run's exposition is queued first; then every pending push to that gateway goes out
with prometheus_client's `push_to_gateway` (PUT: each push replaces its group), oldest
first, the new one last. The first that fails stops the rest (their order is kept): a
network error, a 5xx, a 429 or an authentication failure (401, 403: the URL's password can
be fixed) leaves it pending for the next run; any other 4xx (a 400: metrics the gateway
will never take) marks it failed and the next ones go on.

A URL may carry basic-auth credentials (http://user:password@gateway:9091): they go in
the Authorization header, are masked in every message and are never stored.

Grouping key: `job` (`--push-job`, default `checkrun`), `instance` (the runner's host
name: shards of one playbook on several runners do not overwrite each other) and
`playbook` (the playbook's file name: two playbooks on one runner neither).
"""

from __future__ import annotations

import hashlib
import socket
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.exposition import basic_auth_handler, default_handler, push_to_gateway
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from checkrunner.errors import ConfigError
from checkrunner.report.prometheus import exposition
from checkrunner.results import RunResult
from checkrunner.state.db import StateDB
from checkrunner.state.pushes import DELIVERED, FAILED, PendingPush, PushOutbox

# Kept for the next run: the gateway may take it then (a fixed password, a rate limit over).
RETRIED_4XX = (401, 403, 429)
PUSH_TIMEOUT = 10.0  # seconds per push: a gateway that hangs costs the run this, once


@dataclass
class PushReport:
    delivered: int = 0
    refused: list[str] = field(default_factory=list)  # failed for good, with the reason
    pending: int = 0  # left for the next run
    elsewhere: int = 0  # pending for other gateways
    error: str | None = None  # why the first pending push failed


@dataclass(frozen=True)
class Gateway:
    """A --push URL: where to push, and the basic-auth credentials it carried
    (http://user:password@host:9091), which go in a header, never in the state database."""

    url: str  # without the credentials
    username: str | None = None
    password: str | None = None

    @property
    def destination(self) -> str:
        """What the outbox keys this gateway's pushes by: a digest of its URL."""
        return hashlib.sha256(self.url.rstrip("/").encode()).hexdigest()

    def handler(
        self, url: str, method: str, timeout: float | None, headers: list, data: bytes
    ) -> Callable[[], None]:
        """prometheus_client's request handler, with basic auth when the URL asked for it."""
        if self.username is None:
            return default_handler(url, method, timeout, headers, data)
        return basic_auth_handler(
            url, method, timeout, headers, data, self.username, self.password or ""
        )


def parse_gateway(text: str) -> Gateway:
    """The --push URL, or ConfigError (exit 5 before anything runs)."""
    parsed = urllib.parse.urlsplit(text)
    try:
        host = parsed.hostname
        port = parsed.port
    except ValueError:
        host = None
    if parsed.scheme not in ("http", "https") or not host:
        raise ConfigError(
            "--push: not an http(s) URL",
            hint="give the Pushgateway's base URL, e.g. --push http://pushgateway:9091",
        )
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{port}" if port is not None else ""
    url = urllib.parse.urlunsplit((parsed.scheme, netloc, parsed.path, "", ""))
    if parsed.username is None:
        return Gateway(url)
    password = urllib.parse.unquote(parsed.password) if parsed.password is not None else None
    return Gateway(url, urllib.parse.unquote(parsed.username), password)


def grouping_key(playbook: str, job: str) -> dict[str, str]:
    return {"job": job, "instance": socket.gethostname(), "playbook": Path(playbook).name}


def push_run(
    db: StateDB,
    gateway: Gateway,
    job: str,
    run: RunResult,
    clock: Callable[[], float] = time.time,
) -> PushReport:
    """Queue the (masked) run's metrics and deliver every pending push to `gateway`."""
    outbox = PushOutbox(db)
    outbox.queue(gateway.destination, grouping_key(run.playbook, job), exposition(run), clock())
    return deliver(outbox, gateway, clock)


def deliver(
    outbox: PushOutbox, gateway: Gateway, clock: Callable[[], float] = time.time
) -> PushReport:
    report = PushReport(elsewhere=outbox.pending_elsewhere(gateway.destination))
    pending = outbox.pending(gateway.destination)
    for index, push in enumerate(pending):
        error, retryable = _push(gateway, push)
        if error is None:
            outbox.finish(push.id, DELIVERED, None, clock())
            report.delivered += 1
        elif not retryable:
            outbox.finish(push.id, FAILED, error, clock())
            report.refused.append(error)
        else:
            outbox.record_failure(push.id, error)
            report.pending = len(pending) - index
            report.error = error
            break
    return report


def _push(gateway: Gateway, push: PendingPush) -> tuple[str | None, bool]:
    """(None, _) when the gateway took the push, else (the error, whether to retry it)."""
    grouping = dict(push.grouping)
    job = grouping.pop("job")
    try:
        push_to_gateway(
            gateway.url,
            job,
            _Stored(push.payload),
            grouping_key=grouping,
            timeout=PUSH_TIMEOUT,
            handler=gateway.handler,
        )
    except urllib.error.HTTPError as exc:
        retryable = exc.code >= 500 or exc.code in RETRIED_4XX
        return f"the Pushgateway answered {exc.code} {exc.reason}", retryable
    except (OSError, ValueError) as exc:  # URLError, refused, timeout, a TLS failure
        reason = getattr(exc, "reason", None) or exc
        return f"cannot reach the Pushgateway: {reason}", True
    return None, True


class _Stored(Collector):
    """A queued exposition read back as families, for push_to_gateway to send."""

    def __init__(self, payload: bytes):
        self.payload = payload

    def collect(self) -> Iterator[Metric]:
        yield from text_string_to_metric_families(self.payload.decode("utf-8"))
