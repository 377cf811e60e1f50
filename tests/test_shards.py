"""`--shard K/N`: every host on exactly one shard, the same shard whatever other hosts the
inventory holds, few hosts moved when N grows; applied after --limit, in runs and watch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib

import pytest
from helpers import run_checkrun

from checkrunner.shards import ShardInfo, ShardSpec, jump_hash, parse_shard, shard_of

FLEET = [f"web-{index:04d}.dc{index % 3}.example.com" for index in range(3000)]


def test_every_host_is_on_exactly_one_shard_and_the_shards_are_even():
    for count in (1, 2, 3, 7, 16):
        shards = [
            [host for host in FLEET if shard_of(host, count) == k] for k in range(1, count + 1)
        ]
        assert sorted(host for shard in shards for host in shard) == sorted(FLEET)
        expected = len(FLEET) / count
        assert all(abs(len(shard) - expected) < 0.2 * expected for shard in shards), [
            len(shard) for shard in shards
        ]


def test_adding_hosts_moves_no_host_to_another_shard():
    before = {host: shard_of(host, 5) for host in FLEET[:1000]}
    after = {host: shard_of(host, 5) for host in FLEET}  # 2000 hosts added
    assert all(after[host] == shard for host, shard in before.items())


@pytest.mark.parametrize("count", [2, 3, 4, 8, 10])
def test_one_more_shard_moves_only_the_hosts_the_new_shard_takes(count):
    moved = [host for host in FLEET if shard_of(host, count) != shard_of(host, count + 1)]
    assert all(shard_of(host, count + 1) == count + 1 for host in moved)
    # about 1/(N+1) of the hosts move; hashmod (a modulo) moves about N/(N+1) of them
    assert len(moved) < 1.3 * len(FLEET) / (count + 1)
    modulo = [
        h for h in FLEET if zlib.crc32(h.encode()) % count != zlib.crc32(h.encode()) % (count + 1)
    ]
    assert len(modulo) > 1.5 * len(moved)


def test_the_jump_hash_is_the_published_algorithm():
    """The reference implementation's buckets (as ClickHouse's jumpConsistentHash tests
    pin them): a runner built elsewhere, or a later checkrun, cuts the same shards."""
    cases = [(1, 1, 0), (42, 57, 43), (256, 1024, 520), (3735883980, 1, 0)]
    cases += [(3735883980, 666, 361), (16045690984833335023, 255, 237)]
    assert [jump_hash(key, buckets) for key, buckets, _ in cases] == [c[2] for c in cases]


def test_the_shard_of_a_host_does_not_depend_on_the_python_process():
    """A digest, not Python's salted hash(): another interpreter agrees."""
    code = "from checkrunner.shards import shard_of; print([shard_of(h, 7) for h in ['web1', 'db1', 'ö']])"
    answers = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert answers == {f"{[shard_of(h, 7) for h in ['web1', 'db1', 'ö']]}\n"}


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("0/3", "K counts from 1 to N"),
        ("4/3", "shard 4 of 3 does not exist"),
        ("1/0", "number of shards must be 1 to"),
        ("2", "not K/N"),
        ("a/b", "not K/N"),
        ("1/3/5", "not K/N"),
    ],
)
def test_a_bad_shard_is_a_value_error_with_the_fix(text, phrase):
    with pytest.raises(ValueError, match=phrase):
        parse_shard(text)


def test_a_shard_info_names_the_hosts_of_any_shard():
    info = ShardInfo.of(ShardSpec(2, 3), FLEET[:30])
    union = [host for index in (1, 2, 3) for host in info.hosts_of(index)]
    assert sorted(union) == sorted(FLEET[:30])
    assert info.to_dict()["hosts"] == len(info.hosts_of(2))


# ------------------------------------------------------------------------- the command line


def _fleet_files(tmp_path, hosts: int, play_hosts: str = "all"):
    inventory = tmp_path / "inv.yml"
    inventory.write_text(
        "all:\n  vars: {ansible_connection: local}\n  children:\n"
        f"    web:\n      hosts:\n        web[01:{hosts:02d}]: {{}}\n"
        "    db:\n      hosts:\n        db[1:4]: {}\n"
    )
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        f"- name: p\n  hosts: {play_hosts}\n  checks: [{{name: m, memory: {{}}}}]\n"
    )
    return playbook, inventory


def _listed(done) -> list[str]:
    assert done.returncode == 0, done.stderr
    return [line.strip() for line in done.stdout.splitlines()[1:]]


def test_the_shards_of_a_run_list_every_host_once_after_limit(tmp_path):
    playbook, inventory = _fleet_files(tmp_path, 20)
    everyone = _listed(run_checkrun(playbook, "-i", inventory, "-l", "web", "--list-hosts"))
    assert len(everyone) == 20
    shards = [
        _listed(
            run_checkrun(
                playbook, "-i", inventory, "-l", "web", "--shard", f"{k}/3", "--list-hosts"
            )
        )
        for k in (1, 2, 3)
    ]
    assert sorted(host for shard in shards for host in shard) == sorted(everyone)
    assert all(shard for shard in shards)
    # each host where its hash puts it, in the inventory's order within the shard
    for index, shard in enumerate(shards, start=1):
        assert shard == [host for host in everyone if shard_of(host, 3) == index]


def test_hosts_added_to_the_inventory_keep_their_shard(tmp_path):
    playbook, inventory = _fleet_files(tmp_path, 12)
    before = {
        k: _listed(run_checkrun(playbook, "-i", inventory, "--shard", f"{k}/4", "--list-hosts"))
        for k in range(1, 5)
    }
    playbook, inventory = _fleet_files(tmp_path, 60)  # 48 more web hosts
    after = {
        k: _listed(run_checkrun(playbook, "-i", inventory, "--shard", f"{k}/4", "--list-hosts"))
        for k in range(1, 5)
    }
    for k in range(1, 5):
        assert set(before[k]) <= set(after[k]), k
    assert sum(len(hosts) for hosts in after.values()) == 64


def test_a_shard_report_says_which_shard_and_every_planned_host(tmp_path):
    playbook, inventory = _fleet_files(tmp_path, 6)
    done = run_checkrun(playbook, "-i", inventory, "--shard", "2/3", "-r", "json", "--no-state")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    planned = [f"web{i:02d}" for i in range(1, 7)] + [f"db{i}" for i in range(1, 5)]
    mine = [host for host in planned if shard_of(host, 3) == 2]
    assert report["shard"] == {
        "index": 2,
        "count": 3,
        "hosts": len(mine),
        "planned": [{"host": host, "shard": shard_of(host, 3)} for host in planned],
    }
    assert [host["host"] for host in report["hosts"]] == mine


def test_a_shard_with_no_host_still_writes_its_report(tmp_path):
    playbook, inventory = _fleet_files(tmp_path, 1)  # 5 hosts over 40 shards
    empty = next(
        k
        for k in range(1, 41)
        if all(shard_of(h, 40) != k for h in ["web01", "db1", "db2", "db3", "db4"])
    )
    done = run_checkrun(
        playbook, "-i", inventory, "--shard", f"{empty}/40", "-r", "json", "--no-state"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["hosts"] == [] and report["shard"]["hosts"] == 0
    assert len(report["shard"]["planned"]) == 5


def test_watch_with_a_shard_checks_only_its_hosts(tmp_path):
    from helpers import wait_for
    from watching import WatchProcess

    playbook, inventory = _fleet_files(tmp_path, 8)
    planned = [f"web{i:02d}" for i in range(1, 9)] + [f"db{i}" for i in range(1, 5)]
    mine = [host for host in planned if shard_of(host, 2) == 2]
    others = [host for host in planned if host not in mine]
    shard = ("--shard", "2/2", "--interval", "1s", "--no-state")
    with WatchProcess(playbook, "-i", inventory, *shard) as watch:
        for host in mine:
            wait_for(
                lambda host=host: watch.metric("checkrun_check_status", host=host) is not None,
                f"a round on {host}",
                timeout=60,
            )
        assert all(watch.metric("checkrun_check_status", host=host) is None for host in others)
        assert watch.stop() == 0
