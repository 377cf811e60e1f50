# Regex options (`body`, `stdout_not`, `contains`...): compiled once with the option named in
# the error, and the failures they find in a text.
import re


def as_list(value):
    """An option that takes one value or a list of them, as a list."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def compile_pattern(pattern, option):
    try:
        return re.compile(str(pattern), re.MULTILINE)
    except re.error as exc:
        raise ValueError("%s: invalid regular expression %r: %s" % (option, pattern, exc)) from None


def compile_option(args, option):
    """The option's regexes, compiled."""
    return [compile_pattern(pattern, option) for pattern in as_list(args.get(option))]


def failures(subject, text, must, must_not, plural=False):
    """ "body does not match /ok/" for each must pattern not found in text, and
    "body matches /error/ ('error 5')" for each must_not pattern found."""
    found_none, found_one = ("do not", "match") if plural else ("does not", "matches")
    out = []
    for pattern in must:
        if not pattern.search(text):
            out.append("%s %s match /%s/" % (subject, found_none, pattern.pattern))
    for pattern in must_not:
        found = pattern.search(text)
        if found:
            out.append(
                "%s %s /%s/ (%r)" % (subject, found_one, pattern.pattern, found.group(0)[:80])
            )
    return out
