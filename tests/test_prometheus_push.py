"""`--push URL` against the real Pushgateway: the run's metrics arrive under the grouping
key, secrets masked; a gateway that is down keeps the push in the state database, and the
next run delivers the old push then the new one, in order, none twice."""

from __future__ import annotations

import json
import socket
import sqlite3
import urllib.request
from pathlib import Path

import bcrypt
from helpers import run_checkrun
from prometheus_servers import get, running_pushgateway, scrape
from sshd import free_port

SECRET = "s3cr3t-token-value"


def _playbook(tmp_path: Path, server) -> Path:
    server.routes[f"/health?token={SECRET}"] = (200, "ok")
    port = server.port
    playbook = tmp_path / "edge.yml"
    playbook.write_text(
        f"""
- name: edge
  hosts: localhost
  checks:
    - name: health
      http: {{url: "http://127.0.0.1:{port}/health?token={{{{ env.PROBE_TOKEN }}}}"}}
    - name: broken
      http: {{url: "http://127.0.0.1:{port}/broken"}}
"""
    )
    return playbook


def _run(tmp_path: Path, playbook: Path, gateway: str, report: str, *more: str):
    return run_checkrun(
        playbook,
        "--push",
        gateway,
        "--state",
        tmp_path / "state.db",
        "-r",
        f"json:{tmp_path / report}",
        *more,
        env={"PROBE_TOKEN": SECRET},
    )


def _pushes(url: str) -> float:
    """How many PUTs the gateway accepted (its own counter)."""
    families = scrape(f"{url}/metrics")
    return sum(
        sample.value
        for sample in families["pushgateway_http_requests"].samples
        if sample.name.endswith("_total")
        and sample.labels.get("handler") == "push"
        and sample.labels.get("method") == "put"
        and sample.labels.get("code") == "200"
    )


def _group_metrics(url: str) -> list[dict]:
    """The gateway's groups, from its API."""
    status, body = get(f"{url}/api/v1/metrics")
    assert status == 200, body
    return json.loads(body)["data"]


def test_push_reaches_the_pushgateway_masked_under_its_grouping_key(tmp_path, http_server):
    with running_pushgateway(tmp_path / "gw") as url:
        done = _run(tmp_path, _playbook(tmp_path, http_server), url, "run.json")
        assert done.returncode == 2, done.stderr  # /broken is CRITICAL; the push changes nothing
        assert "--push" not in done.stderr
        (group,) = _group_metrics(url)
        body = scrape(f"{url}/metrics")
    assert group["labels"] == {
        "job": "checkrun",
        "instance": socket.gethostname(),
        "playbook": "edge.yml",
    }
    status = {
        s.labels["check"]: s.value
        for s in body["checkrun_check_status"].samples
        if s.labels["job"] == "checkrun"
    }
    assert status == {"health": 0.0, "broken": 2.0}
    (health,) = [s for s in body["probe_success"].samples if s.labels["check"] == "health"]
    assert health.value == 1.0
    # The probed URL held the secret: it left the run masked.
    assert health.labels["target"] == f"http://127.0.0.1:{http_server.port}/health?token=***"
    assert SECRET not in json.dumps(group)
    assert SECRET.encode() not in (tmp_path / "state.db").read_bytes()


def test_a_gateway_that_is_down_loses_nothing_and_gets_the_pushes_in_order(tmp_path, http_server):
    playbook = _playbook(tmp_path, http_server)
    port = free_port()
    gateway = f"http://127.0.0.1:{port}"

    down = _run(tmp_path, playbook, gateway, "first.json")
    assert down.returncode == 2, down.stderr  # the run's own exit code, not the push's
    assert "--push: 1 push(es) kept in the state database for the next run" in down.stderr
    assert _outbox(tmp_path) == [(1, "pending", 1)]

    with running_pushgateway(tmp_path / "gw", port=port) as url:
        up = _run(tmp_path, playbook, gateway, "second.json")
        assert up.returncode == 2, up.stderr
        assert "--push" not in up.stderr
        assert _pushes(url) == 2  # the old push, then the new one
        rows = _outbox(tmp_path)
        assert [row[:2] for row in rows] == [(1, "delivered"), (2, "delivered")]
        first_done, second_done = _done_at(tmp_path)
        assert first_done <= second_done
        # The gateway shows the newest run: the old push went first.
        shown = scrape(f"{url}/metrics")["checkrun_run_finished_timestamp_seconds"].samples
        second = json.loads((tmp_path / "second.json").read_text())["finished_at"]
        assert [s.value for s in shown] == [second]

        again = _run(tmp_path, playbook, gateway, "third.json")
        assert again.returncode == 2, again.stderr
        assert _pushes(url) == 3  # nothing pushed twice


def test_a_5xx_keeps_the_push_and_a_refusal_is_not_retried(tmp_path, http_server):
    """A server that answers 5xx (the test HTTP server knows no PUT: 501) keeps the push for
    the next run; a real Pushgateway that refuses a push for good (400: its metric types
    clash with another group's) marks it failed, and the pushes after it still go out."""
    playbook = _playbook(tmp_path, http_server)
    answered_5xx = _run(tmp_path, playbook, http_server.url, "first.json")
    assert answered_5xx.returncode == 2, answered_5xx.stderr
    assert "kept in the state database" in answered_5xx.stderr
    assert "answered 501" in answered_5xx.stderr
    assert _outbox(tmp_path) == [(1, "pending", 1)]

    with running_pushgateway(tmp_path / "gw") as url:
        clash = b"# TYPE checkrun_check_status counter\ncheckrun_check_status 1\n"
        request = urllib.request.Request(f"{url}/metrics/job/other", data=clash, method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        refused = _run(tmp_path, playbook, url, "second.json")
        assert refused.returncode == 2, refused.stderr
        assert "the Pushgateway refused a push, not retried: " in refused.stderr
        assert "answered 400" in refused.stderr
        # The first push still waits for its own gateway (another URL); the refused one is done.
        assert _outbox(tmp_path) == [(1, "pending", 1), (2, "failed", 1)]
        assert "1 push(es) wait for another Pushgateway URL" in refused.stderr


def test_push_without_state_or_with_a_bad_url_is_exit_5(tmp_path, http_server):
    playbook = _playbook(tmp_path, http_server)
    env = {"PROBE_TOKEN": SECRET}
    no_state = run_checkrun(playbook, "--push", "http://127.0.0.1:9", "--no-state", env=env)
    assert no_state.returncode == 5
    assert "--no-state: --push keeps" in no_state.stderr
    bad = run_checkrun(playbook, "--push", "ftp://gateway", "--state", tmp_path / "s.db", env=env)
    assert bad.returncode == 5
    assert "--push: not an http(s) URL" in bad.stderr


def test_credentials_in_the_url_are_basic_auth_and_never_kept(tmp_path, http_server):
    password = "gw-pa55word"
    config = tmp_path / "gw-web.yml"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    config.write_text(f"basic_auth_users:\n  pusher: {hashed}\n")
    playbook = _playbook(tmp_path, http_server)
    with running_pushgateway(tmp_path / "gw", web_config=config) as url:
        address = url.removeprefix("http://")
        wrong = _run(tmp_path, playbook, f"http://pusher:nope@{address}", "first.json")
        assert "answered 401" in wrong.stderr and "kept in the state database" in wrong.stderr
        right = _run(tmp_path, playbook, f"http://pusher:{password}@{address}", "second.json")
        assert right.returncode == 2, right.stderr
        assert "--push" not in right.stderr
        status, body = get(f"{url}/api/v1/metrics", auth=("pusher", password))
        assert status == 200 and json.loads(body)["data"][0]["labels"]["job"] == "checkrun"
    assert password not in wrong.stderr + right.stderr
    assert password.encode() not in (tmp_path / "state.db").read_bytes()
    # The password fixed, the push the wrong one could not make went first.
    assert [row[1] for row in _outbox(tmp_path)] == ["delivered", "delivered"]


def _outbox(tmp_path: Path) -> list[tuple[int, str, int]]:
    with sqlite3.connect(tmp_path / "state.db") as connection:
        return list(connection.execute("SELECT id, state, attempts FROM push_outbox ORDER BY id"))


def _done_at(tmp_path: Path) -> list[float]:
    with sqlite3.connect(tmp_path / "state.db") as connection:
        return [row[0] for row in connection.execute("SELECT done_at FROM push_outbox ORDER BY id")]


def test_an_edge_watch_keeps_one_push_while_the_gateway_is_away_and_delivers_it_after(
    tmp_path, http_server
):
    """`checkrun watch --push`: an edge runner whose link to the central Pushgateway is
    down keeps pushing nothing but the newest results (older pending ones superseded), never
    waits for the link, and delivers once the gateway is back."""
    from helpers import wait_for
    from watching import WatchProcess

    playbook = tmp_path / "edge.yml"
    playbook.write_text(
        "- name: edge\n  hosts: localhost\n  checks:\n"
        f"    - {{name: health, interval: 1s, http: {{url: 'http://127.0.0.1:{http_server.port}/health'}}}}\n"
        f"    - {{name: broken, interval: 1s, http: {{url: 'http://127.0.0.1:{http_server.port}/broken'}}}}\n"
    )
    port = free_port()
    watch = WatchProcess(
        playbook, "--push", f"http://127.0.0.1:{port}", "--state", tmp_path / "state.db"
    )
    try:
        watch.wait_event("push-deferred", timeout=60)
        wait_for(lambda: _outbox_states(tmp_path).count("superseded") >= 2, "superseded", 60)
        assert _outbox_states(tmp_path).count("pending") == 1  # the newest only
        queued_before = len(_outbox(tmp_path))
        with running_pushgateway(tmp_path / "gw", port=port) as url:
            watch.wait_event("push-delivered", timeout=120)
            (group,) = _group_metrics(url)
            assert group["labels"]["job"] == "checkrun"
            assert group["labels"]["playbook"] == "edge.yml"
            status = scrape(f"{url}/metrics")["checkrun_check_status"].samples
            assert {s.labels["check"]: s.value for s in status} == {"health": 0.0, "broken": 2.0}
            pushed = _pushes(url)
            queued_since = len(_outbox(tmp_path)) - queued_before
            assert pushed <= queued_since + 1  # the newest pending, then the rounds' since
    finally:
        assert watch.stop() == 0, watch.other


def _outbox_states(tmp_path: Path) -> list[str]:
    return [state for _, state, _ in _outbox(tmp_path)]
