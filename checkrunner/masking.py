"""Secrets never leave the run: values read from the environment by templates, the become
password, inventory passwords and receiver secrets are replaced by *** before results reach
any consumer (reports, alerting, the state database) and before an error is shown.

Where the masking happens:
- `Masker.mask_identities(plan)`: the host, play and check names every result, alert and
  state row is keyed by. A check named "probe {{ env.TOKEN }}" is "probe ***" everywhere,
  so its alert fingerprint and state keys stay the same from run to run (and across a
  rotation of the token) while the token itself is never stored. What a name says
  literally in the playbook is not masked in it: "deploy to prod" stays one check whether
  or not this run's templates read an environment value "prod" (--tags, --limit).
- `Masker.leaving_run`, called by the runner on each host's result as it leaves the run:
  what the targets sent (messages, facts) is masked before any listener, alerting or state
  sees it; check names are the identities above.
- `errors_masked`: ConfigErrors raised while rendering templates (a type error quoting a
  value read from the environment).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from checkrunner.errors import ELLIPSIS, ConfigError

if TYPE_CHECKING:
    from checkrunner.results import HostResult

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values ("1", "yes") would garble reports and hide nothing

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)


def _forms(secret: str) -> set[str]:
    """The secret as it appears in text: as is, escaped by repr() (error messages quote
    values with it) and by JSON (reports and the state database)."""
    escaped = (repr(secret), json.dumps(secret), json.dumps(secret, ensure_ascii=False))
    return {secret, *(text[1:-1] for text in escaped)}


class Masker:
    def __init__(self, secrets: Iterable[str | None]):
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted(
            {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )
        forms = sorted({f for s in self.secrets for f in _forms(s)}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, forms))) if forms else None
        # Beginnings of secrets: an excerpt cut short at one of them (quote() ends it with
        # ELLIPSIS) still gives nothing away.
        self._prefixes = {f[:n] for f in forms for n in range(1, len(f))}
        self._longest_prefix = max((len(p) for p in self._prefixes), default=0)
        self._narrowed: dict[tuple[str, ...], Masker] = {}

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, value: str) -> str:
        if self._pattern is None:
            return value
        value = self._pattern.sub(MASK, value)
        if ELLIPSIS in value:
            value = self._mask_cut_short(value)
        return value

    def _mask_cut_short(self, value: str) -> str:
        """The end of each excerpt quote() made (ELLIPSIS, then the closing quote) masked
        when it is the beginning of a secret. Other ellipses are left alone: a message's
        "loading…" must not lose letters that happen to begin a secret."""
        parts = value.split(ELLIPSIS)
        for index, part in enumerate(parts[:-1]):
            if not parts[index + 1].startswith(("'", '"')):
                continue
            for length in range(min(self._longest_prefix, len(part)), 0, -1):
                if part[-length:] in self._prefixes:
                    parts[index] = part[:-length] + MASK
                    break
        return ELLIPSIS.join(parts)

    def value(self, value: T) -> T:
        """`value` with every string in it masked: dicts (keys too), lists, tuples and
        dataclasses (results, identities) recursively; the same object without secrets."""
        if not self.secrets:
            return value
        return self._value(value)

    def _value(self, value: Any) -> Any:
        if isinstance(value, enum.Enum):  # Status is a str; it stays a Status
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self._value(k): self._value(v) for k, v in value.items()}
        if isinstance(value, tuple):
            return tuple(self._value(v) for v in value)
        if isinstance(value, list):
            return [self._value(v) for v in value]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes = {
                f.name: self._value(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if f.init
            }
            return dataclasses.replace(value, **changes)
        return value

    # Results: everything in them.
    check = value
    host = value
    run = value

    def leaving_run(self, host: HostResult) -> HostResult:
        """A host's result as it leaves the run: everything masked but the checks' names,
        which are the plan's identities (mask_identities) and must stay the keys they are."""
        if not self.secrets:
            return host
        masked = self.value(host)
        for check, original in zip(masked.checks, host.checks):
            check.name = original.name
        return masked

    def _without_literals(self, source: str) -> Masker:
        """This masker without the secrets that `source` (playbook text) holds literally."""
        written = [s for s in self.secrets if s in source]
        if not written:
            return self
        key = tuple(written)
        if key not in self._narrowed:
            self._narrowed[key] = Masker(s for s in self.secrets if s not in written)
        return self._narrowed[key]

    def mask_identities(self, plan: Any) -> list[str]:
        """What planned checks are keyed by (host, play, name) masked, in place: log state and
        alert streaks are looked up by it before the results exit the run. A name keeps what
        its template says literally (`depends_on` names are literal too). Arguments and
        thresholds are left alone: the target and the evaluation need the real values (the
        results are masked as a whole when they leave the run).

        Returns a warning for each masked name that several checks of a play now share."""
        if not self.secrets:
            return []
        shard = getattr(plan, "shard", None)
        if shard is not None:  # the host names a shard's report lists
            shard.planned = [(self.text(host), index) for host, index in shard.planned]
        names: dict[tuple[str, str, str], set[str]] = {}
        for host_plan in plan.hosts:
            for planned in host_plan.checks:
                identity = planned.identity
                masked_name = self._without_literals(planned.name_template).text(identity.name)
                if masked_name != identity.name:
                    key = (identity.host, identity.play, masked_name)
                    names.setdefault(key, set()).add(identity.name)
                planned.identity = dataclasses.replace(
                    identity,
                    host=self.text(identity.host),
                    play=self.text(identity.play),
                    name=masked_name,
                )
            host_plan.scores = [
                dataclasses.replace(
                    score,
                    identity=dataclasses.replace(
                        score.identity,
                        host=self.text(score.identity.host),
                        play=self.text(score.identity.play),
                    ),
                )
                for score in host_plan.scores
            ]
        shared = {
            (play, name): len(real) for (_, play, name), real in names.items() if len(real) > 1
        }
        return [
            f"play '{self.text(play)}': {count} checks are named '{name}' once secrets are "
            "masked: alerting and the state database take them for one check; name them apart "
            "with something that is not secret"
            for (play, name), count in shared.items()
        ]

    def error(self, exc: E) -> E:
        """The exception with every secret in its message masked, in place (a ConfigError's
        hint and the errors it groups too). The exceptions it was raised from are dropped
        when it held a secret: -vvv, and the traceback of a crash, would print them."""
        if not self.secrets:
            return exc
        changed = False
        for error in [exc, *getattr(exc, "errors", [])]:
            if isinstance(error, ConfigError):
                masked = (self.text(error.message), self.text(error.hint or "") or error.hint)
                changed |= masked != (error.message, error.hint)
                error.message, error.hint = masked
            args = tuple(self.value(arg) for arg in error.args)
            changed |= args != error.args
            error.args = args
        if changed:
            exc.__cause__ = None
            exc.__suppress_context__ = True
        return exc


@contextlib.contextmanager
def errors_masked(secrets: Callable[[], Iterable[str | None]]) -> Iterator[None]:
    """Exceptions raised inside come out with `secrets()` (read when the error is raised:
    the environment values templates have read so far) masked in their messages."""
    try:
        yield
    except Exception as exc:
        Masker(secrets()).error(exc)
        raise
