"""Alertmanager's routing tree and inhibition rules, with its semantics.

- The root route matches every alert. Children are tried depth-first, in order; matching
  stops at the first child that matches unless that child says `continue: true`. When no
  child matches, the node itself is the match.
- Children inherit `receiver`, `group_by` and `repeat_interval` from their parent.
- The group key is the route's key plus the group labels, as Alertmanager writes it:
  `{}/{severity="critical"}:{alertname="disk full"}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from checkrunner.alerting.matchers import Matcher, all_match

DEFAULT_REPEAT_INTERVAL = 4 * 3600.0
GROUP_BY_ALL = "..."


@dataclass
class Route:
    receiver: str
    matchers: tuple[Matcher, ...] = ()
    group_by: tuple[str, ...] = ()
    repeat_interval: float = DEFAULT_REPEAT_INTERVAL
    continue_: bool = False
    routes: list[Route] = field(default_factory=list)
    key: str = "{}"

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
) -> Route:
    """A route with what it does not say inherited from its parent; children re-keyed."""
    route = Route(
        receiver=receiver or (parent.receiver if parent else ""),
        matchers=matchers,
        group_by=group_by if group_by is not None else (parent.group_by if parent else ()),
        repeat_interval=repeat_interval
        if repeat_interval is not None
        else (parent.repeat_interval if parent else DEFAULT_REPEAT_INTERVAL),
        continue_=continue_,
        routes=children,
    )
    route.key = "{}" if parent is None else f"{parent.key}/{{{','.join(str(m) for m in matchers)}}}"
    return route


def label_set_text(labels: dict[str, str]) -> str:
    inner = ", ".join(
        f'{name}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for name, value in sorted(labels.items())
    )
    return "{" + inner + "}"


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
