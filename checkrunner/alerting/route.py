"""Alertmanager's routing tree and inhibition rules, with its semantics.

- The root route matches every alert. Children are tried depth-first, in order; matching
  stops at the first child that matches unless that child says `continue: true`. When no
  child matches, the node itself is the match.
- Children inherit `receiver`, `group_by` and `repeat_interval` from their parent.
- The group key is the route's key plus the group labels, as Alertmanager 0.25 writes it
  (dispatch.Route.Key, aggrGroup.GroupKey): `{}/{severity="critical"}:{alertname="disk full"}`;
  the path of matcher sets from the root, each sorted (name, value, operator) and written
  with OpenMetrics escapes, then the group labels as Go's model.LabelSet.String() writes
  them (`name="value"` with Go's %q quoting, the pairs sorted as text).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from checkrunner.alerting.matchers import Matcher, all_match, sort_matchers

DEFAULT_REPEAT_INTERVAL = 4 * 3600.0
GROUP_BY_ALL = "..."


@dataclass(frozen=True)
class RouteTimers:
    """Alertmanager's timers as written on one route (None: inherited). group_wait and
    group_interval are waited for in watch mode only (alerting.runtime.process_run)."""

    group_wait: float | None = None
    group_interval: float | None = None
    repeat_interval: float | None = None


@dataclass
class Route:
    receiver: str
    matchers: tuple[Matcher, ...] = ()
    group_by: tuple[str, ...] = ()
    repeat_interval: float = DEFAULT_REPEAT_INTERVAL
    continue_: bool = False
    routes: list[Route] = field(default_factory=list)
    key: str = "{}"
    group_wait: float = 30.0
    group_interval: float = 300.0
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()

    def muted_at(self, moment: dt.datetime, intervals: Mapping[str, object]) -> bool:
        """Whether notifications of this route are held at `moment`: inside one of its
        mute_time_intervals, or outside all of its active_time_intervals (Alertmanager's
        TimeMuteStage and TimeActiveStage)."""
        if any(intervals[n].contains(moment) for n in self.mute_time_intervals if n in intervals):
            return True
        active = [intervals[n] for n in self.active_time_intervals if n in intervals]
        return bool(active) and not any(i.contains(moment) for i in active)

    def match(self, labels: dict[str, str]) -> list[Route]:
        """The routes (leaves of the walk) an alert with these labels goes to."""
        if not all_match(self.matchers, labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            matches = child.match(labels)
            found.extend(matches)
            if matches and not child.continue_:
                break
        return found or [self]

    def group_labels(self, labels: dict[str, str]) -> dict[str, str]:
        if GROUP_BY_ALL in self.group_by:
            return dict(labels)
        return {name: labels[name] for name in self.group_by if labels.get(name, "") != ""}

    def group_key(self, labels: dict[str, str]) -> str:
        return f"{self.key}:{label_set_text(self.group_labels(labels))}"


def build_route(
    receiver: str | None,
    matchers: tuple[Matcher, ...],
    group_by: tuple[str, ...] | None,
    repeat_interval: float | None,
    continue_: bool,
    children: list[Route],
    parent: Route | None,
    *,
    timers: RouteTimers | None = None,
    mute_time_intervals: tuple[str, ...] = (),
    active_time_intervals: tuple[str, ...] = (),
) -> Route:
    """A route with what it does not say inherited from its parent; children re-keyed.
    Time intervals are not inherited (Alertmanager's NewRoute sets them per route)."""
    matchers = sort_matchers(matchers)
    timers = timers or RouteTimers()
    route = Route(
        receiver=receiver or (parent.receiver if parent else ""),
        matchers=matchers,
        group_by=group_by if group_by is not None else (parent.group_by if parent else ()),
        repeat_interval=repeat_interval
        if repeat_interval is not None
        else (parent.repeat_interval if parent else DEFAULT_REPEAT_INTERVAL),
        continue_=continue_,
        routes=children,
        group_wait=_inherit(timers.group_wait, parent.group_wait if parent else 30.0),
        group_interval=_inherit(timers.group_interval, parent.group_interval if parent else 300.0),
        mute_time_intervals=tuple(mute_time_intervals),
        active_time_intervals=tuple(active_time_intervals),
    )
    route.key = "{}" if parent is None else f"{parent.key}/{{{','.join(str(m) for m in matchers)}}}"
    return route


def _inherit(value: float | None, inherited: float) -> float:
    return inherited if value is None else value


def label_set_text(labels: dict[str, str]) -> str:
    """model.LabelSet.String(): `{a="1", b="x\\ny"}`."""
    return (
        "{" + ", ".join(sorted(f"{name}={go_quote(value)}" for name, value in labels.items())) + "}"
    )


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def go_quote(text: str) -> str:
    """Go's strconv.Quote (fmt's %q): printable characters as they are, the rest escaped."""
    out = []
    for char in text:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()

    def inhibits(self, target: dict[str, str], sources: list[dict[str, str]]) -> bool:
        """Whether an alert with labels `target` is muted by one of the firing `sources`.

        An alert that matches both sides is not muted by alerts that also match both
        sides (Alertmanager's guard against self-inhibition).
        """
        if not all_match(self.target, target):
            return False
        target_is_source = all_match(self.source, target)
        for source in sources:
            if source is target or not all_match(self.source, source):
                continue
            if target_is_source and all_match(self.target, source):
                continue
            if all(source.get(n, "") == target.get(n, "") for n in self.equal):
                return True
        return False
