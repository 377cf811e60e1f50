"""`--shard K/N`: which of the planned hosts a shard runs, and what its report says about it.

A host's shard is a jump consistent hash (Lamping and Veach, 2014) of a digest of its
inventory name: it depends on the name and N only, so a host keeps its shard when hosts
are added or removed, and going from N to N+1 shards moves only the 1/(N+1) of the hosts
that the new shard takes (Prometheus' `hashmod`, a modulo, moves most hosts when N
changes). Rendezvous hashing moves as few, but costs N hashes per host; the jump hash is
O(log N) and needs no table. The digest is BLAKE2b, never Python's salted `hash()`, so
every runner, on every machine and Python version, puts a host on the same shard.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

MAX_SHARDS = 10_000
_SPEC = re.compile(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*")
_MASK64 = (1 << 64) - 1


def jump_hash(key: int, buckets: int) -> int:
    """The bucket in [0, buckets) of a 64-bit key (Lamping and Veach, "A Fast, Minimal
    Memory, Consistent Hash Algorithm")."""
    bucket, candidate = -1, 0
    while candidate < buckets:
        bucket = candidate
        key = (key * 2862933555777941757 + 1) & _MASK64
        candidate = int((bucket + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return bucket


def shard_of(host: str, count: int) -> int:
    """The shard (1..count) that runs `host`."""
    digest = hashlib.blake2b(host.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return jump_hash(int.from_bytes(digest, "big"), count) + 1


@dataclass(frozen=True)
class ShardSpec:
    """`--shard K/N`: shard `index` (1-based) of `count`."""

    index: int
    count: int

    def owns(self, host: str) -> bool:
        return shard_of(host, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> ShardSpec:
    """'2/3' -> ShardSpec(2, 3); ValueError with the fix for anything else."""
    match = _SPEC.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{text!r}: not K/N: write the shard's number and the number of shards, "
            "e.g. --shard 1/3 (in CI: --shard $CI_NODE_INDEX/$CI_NODE_TOTAL)"
        )
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= count <= MAX_SHARDS:
        raise ValueError(f"{text!r}: the number of shards must be 1 to {MAX_SHARDS}")
    if not 1 <= index <= count:
        raise ValueError(
            f"{text!r}: shard {index} of {count} does not exist: K counts from 1 to N "
            f"(e.g. --shard 1/{count} ... --shard {count}/{count})"
        )
    return ShardSpec(index, count)


@dataclass
class ShardInfo:
    """What a shard's report says about it, for `checkrun merge`: which shard it is and
    every host planned over all the shards (after --limit), in plan order, with the shard
    that runs it, so that the merge can order the hosts as one run would, check that the
    shards planned the same hosts, and name the hosts of a shard whose report is missing.
    The shard of each host is recorded when the plan is made: a name masked in the report
    (it held a secret) keeps its shard."""

    index: int
    count: int
    planned: list[tuple[str, int]] = field(default_factory=list)  # (host, its shard)

    @classmethod
    def of(cls, spec: ShardSpec, hosts: list[str]) -> ShardInfo:
        return cls(spec.index, spec.count, [(host, shard_of(host, spec.count)) for host in hosts])

    def hosts_of(self, index: int) -> list[str]:
        """The planned hosts shard `index` runs, in plan order."""
        return [host for host, shard in self.planned if shard == index]

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "count": self.count,
            "hosts": len(self.hosts_of(self.index)),
            "planned": [{"host": host, "shard": shard} for host, shard in self.planned],
        }


@dataclass
class ShardReport:
    """One report `checkrun merge` was given: the shard it holds, or why it could not be
    read (`index` None)."""

    file: str
    index: int | None = None
    error: str | None = None
    interrupted: bool = False

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "shard": self.index,
            "error": self.error,
            "interrupted": self.interrupted,
        }


@dataclass
class MergeInfo:
    """What `checkrun merge` joined: N, each report given, and the shards none held (their
    hosts are in the merged report with an UNKNOWN `shard report` check)."""

    count: int
    reports: list[ShardReport] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing and not any(report.interrupted for report in self.reports)

    def to_dict(self) -> dict:
        return {
            "count": self.count,
            "complete": self.complete,
            "missing": list(self.missing),
            "reports": [report.to_dict() for report in self.reports],
        }
