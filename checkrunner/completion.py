"""Shell completion: `checkrun completion bash|zsh|fish` prints a small script that asks
`checkrun __complete` for the candidates at every TAB.

The candidates are computed here from the command line's own argparse parsers (handed in
by cli), so they cannot drift from the options that exist: subcommands, options, the
choices an option declares, report formats from the report registry, module and receiver
names for `checkrun doc`, and host and group names of the inventories given with -i.
Where a file name fits, the answer holds the line FILES and the shell completes paths
itself (with its own quoting and directory handling).
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

FILES = "__files__"  # "the shell should also offer file names here"
DEFAULT_COMMAND = "run"  # `checkrun PLAYBOOK` is `checkrun run PLAYBOOK`
SHELLS = ("bash", "zsh", "fish")

# What an option's value is, by the argument's dest, where argparse has no choices for it.
_HOST_DESTS = ("limit", "host")
_FILE_METAVARS = ("FILE", "PATH", "SOURCE", "PATH|URL", "DIR")
_FILE_DESTS = ("playbook", "inventory", "output")


@dataclass(frozen=True)
class Sources:
    """Where the dynamic values come from (imported only when a TAB needs them)."""

    report_formats: Callable[[], Iterable[str]]
    doc_names: Callable[[], Iterable[str]]
    host_names: Callable[[Sequence[str]], Iterable[str]]


def default_sources() -> Sources:
    return Sources(_report_formats, _doc_names, _host_names)


def _report_formats() -> list[str]:
    from checkrunner.report import FORMATS

    return [*FORMATS, *(f"{name}:" for name in FORMATS)]


def _doc_names() -> list[str]:
    from checkrunner import catalog
    from checkrunner.alerting.receivers import RECEIVERS

    return [*catalog.module_names(), *RECEIVERS]


def _host_names(inventories: Sequence[str]) -> list[str]:
    """The hosts and groups of `inventories`; nothing when they cannot be read (a TAB never
    prints an error)."""
    from checkrunner.inventory import load_inventories

    if not inventories:
        return ["localhost"]
    try:
        inventory = load_inventories(list(inventories))
    except Exception:  # noqa: BLE001 - a half-typed inventory path must not break the shell
        return []
    return sorted({host.name for host in inventory.list_hosts()} | set(inventory.group_names()))


def complete(
    parsers: Mapping[str, argparse.ArgumentParser],
    words: Sequence[str],
    sources: Sources,
    hidden: Iterable[str] = (),
) -> list[str]:
    """The candidates for the last of `words` (the words after `checkrun`, the last one
    being completed, possibly empty), each starting with it, sorted; FILES among them
    when file names fit too."""
    *before, current = words or [""]
    if before and before[0] in parsers:
        command, args = before[0], before[1:]
    else:
        command, args = DEFAULT_COMMAND, before
    parser = parsers[command]
    state = _walk(parser, args)
    if state.pending is not None:
        found = _values(state.pending, command, state, sources, current)
    elif current.startswith("-") and "=" in current:
        flag, _, value = current.partition("=")
        action = _options(parser).get(flag)
        values = _values(action, command, state, sources, value) if action else []
        found = [item if item == FILES else f"{flag}={item}" for item in values]
    elif current.startswith("-"):
        found = sorted(_options(parser))
    else:
        found = _positional_values(parser, command, state, sources)
        if not before:
            shown = [name for name in parsers if name not in set(hidden)]
            found = [*shown, *found]
    return _matching(found, current)


@dataclass
class _Walk:
    pending: argparse.Action | None  # the option whose value is being typed
    positionals: int  # positional arguments already given
    inventories: list[str]


def _walk(parser: argparse.ArgumentParser, args: Sequence[str]) -> _Walk:
    options = _options(parser)
    walk = _Walk(pending=None, positionals=0, inventories=[])
    for word in args:
        if walk.pending is not None:
            if walk.pending.dest == "inventory":
                walk.inventories.append(word)
            walk.pending = None
        elif word.startswith("-") and word != "-":
            flag, has_value, value = word.partition("=")
            action = options.get(flag)
            if action is not None and action.dest == "inventory" and has_value:
                walk.inventories.append(value)
            elif action is not None and _takes_value(action) and not has_value:
                walk.pending = action
        else:
            walk.positionals += 1
    return walk


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        flag: action
        for action in parser._actions
        if action.help != argparse.SUPPRESS
        for flag in action.option_strings
    }


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0 and action.nargs != "?"


def _positional_values(
    parser: argparse.ArgumentParser, command: str, walk: _Walk, sources: Sources
) -> list[str]:
    positionals = [action for action in parser._actions if not action.option_strings]
    if walk.positionals < len(positionals):
        return _values(positionals[walk.positionals], command, walk, sources)
    if positionals and positionals[-1].nargs in ("*", "+"):
        return _values(positionals[-1], command, walk, sources)
    return []


def _values(
    action: argparse.Action, command: str, walk: _Walk, sources: Sources, current: str = ""
) -> list[str]:
    if action.dest == "report" and ":" in current:
        return [FILES]  # FORMAT:PATH: the shells complete the path after the colon
    if action.choices:
        return [str(choice) for choice in action.choices]
    if action.dest in _HOST_DESTS:
        return list(sources.host_names(walk.inventories))
    if action.dest == "report":
        return list(sources.report_formats())
    if command == "doc" and action.dest == "name":
        return list(sources.doc_names())
    if action.metavar in _FILE_METAVARS or action.dest in _FILE_DESTS:
        return [FILES]
    return []


def _matching(found: Iterable[str], current: str) -> list[str]:
    unique = sorted(set(found) - {FILES})
    matched = [value for value in unique if value.startswith(current)]
    return [*matched, FILES] if FILES in set(found) else matched


def words_of_line(line: str) -> list[str]:
    """The words of a command line typed up to the cursor (bash's COMP_LINE), the last one
    being completed ("" after a space), without the command's own name. An unclosed quote
    is the word being typed."""
    try:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=False)
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError:
        words = line.split()
    if not line or line[-1].isspace():
        words.append("")
    return words[1:] if words else [""]


def trimmed(candidates: Iterable[str], current: str, breaks: str) -> list[str]:
    """bash replaces only what follows the last COMP_WORDBREAKS character of the word
    (`--report=junit:` is three words to it): each candidate loses that much."""
    cut = max((current.rfind(char) for char in breaks), default=-1) + 1
    return [value if value == FILES else value[cut:] for value in candidates]


BASH = r"""# checkrun completion for bash: eval "$(checkrun completion bash)"
_checkrun_complete() {
    local line files=0 cur="${COMP_WORDS[COMP_CWORD]}"
    COMPREPLY=()
    while IFS= read -r line; do
        if [[ $line == __files__ ]]; then
            files=1
        elif [[ -n $line ]]; then
            COMPREPLY+=("$line")
        fi
    done < <(command checkrun __complete --breaks "$COMP_WORDBREAKS" \
                 --line "${COMP_LINE:0:COMP_POINT}" 2>/dev/null)
    if ((files)); then
        [[ $cur == [=:] ]] && cur=""
        compopt -o filenames 2>/dev/null
        while IFS= read -r line; do
            COMPREPLY+=("$line")
        done < <(compgen -f -- "$cur")
    fi
    for line in "${COMPREPLY[@]}"; do
        # an option value ending in ':' or '=' continues: no space after it
        [[ $line == *[:=] ]] && compopt -o nospace 2>/dev/null
    done
    return 0
}
complete -F _checkrun_complete checkrun
"""

ZSH = r"""#compdef checkrun
# checkrun completion for zsh: source <(checkrun completion zsh)   (after compinit)
_checkrun() {
    local line files=0
    local -a candidates
    for line in "${(@f)$(command checkrun __complete -- "${(@Q)words[2,CURRENT]}" 2>/dev/null)}"; do
        if [[ $line == __files__ ]]; then
            files=1
        elif [[ -n $line ]]; then
            candidates+=("$line")
        fi
    done
    if (( ${#candidates} )); then
        compadd -Q -- "${candidates[@]}"
    fi
    if (( files )); then
        compset -P '*:'   # --report FORMAT:PATH completes the path
        _files
    fi
    return 0
}
if [[ "${funcstack[1]}" == "_checkrun" ]]; then
    _checkrun "$@"
else
    compdef _checkrun checkrun
fi
"""

FISH = r"""# checkrun completion for fish: checkrun completion fish | source
function __checkrun_complete
    set -l tokens (commandline -opc) (commandline -ct)
    set -l found (command checkrun __complete -- $tokens[2..-1] 2>/dev/null)
    for line in $found
        if test "$line" = __files__
            # --report FORMAT:PATH completes the path after the colon
            set -l token (commandline -ct)
            set -l prefix ""
            if string match -qr -- '^[a-z]+:' $token
                set prefix (string match -r -- '^[a-z]+:' $token)
            end
            for path in (__fish_complete_path (string replace -r -- '^[a-z]+:' '' $token))
                echo $prefix$path
            end
        else if test -n "$line"
            echo $line
        end
    end
end
complete -c checkrun -f -a '(__checkrun_complete)'
"""

SCRIPTS = {"bash": BASH, "zsh": ZSH, "fish": FISH}
