"""Matchers and regexes against the real Alertmanager 0.25: `amtool check-config` says which
matcher strings are valid, `amtool config routes test` which label values they match, and
checkrun must agree on every one."""

from __future__ import annotations

import json

import pytest
from amtool import check_config, routes_test

from checkrunner.alerting.matchers import all_match, parse_matcher, parse_matchers

# (matchers entry, label sets to route; a plain string is the value of label i)
CASES: list[tuple[str, list]] = [
    (r'i=~"web-\d+"', ["web-12", "web-d+", "web-١٢", "web-"]),
    (r'p="C:\Temp"', [{"p": "C:\\Temp"}, {"p": "C:Temp"}]),
    ("env='prod'", [{"env": "prod"}, {"env": "'prod'"}]),
    ('a="1",b="2"', [{"a": "1", "b": "2"}, {"a": "1"}]),
    ('{a="1", b!="2",}', [{"a": "1", "b": "3"}, {"a": "1", "b": "2"}]),
    ("a=1,", [{"a": "1"}, {"a": "2"}]),
    ('x:y="1"', [{"x:y": "1"}]),
    ("i=a b ", ["a b", "a b "]),
    ('i="a, b"', ["a, b"]),
    ('i="quote \\"x\\""', ['quote "x"', "quote \\x\\"]),
    ('i="a\\nb"', ["a\nb", "a\\nb"]),
    ('i=""', ["", "x"]),
    ('i=~"[[:alpha:]]+"', ["abc", "ab1", "é"]),
    ('i=~"[^[:digit:]]"', ["1", "a"]),
    ('i=~"[[:^alpha:]]"', ["a", "1"]),
    ('i=~"[[:word:]]+"', ["ab_1", "a-b"]),
    (r'i=~"\w+"', ["abc_1", "é"]),
    (r'i=~"[\w]"', ["é", "_"]),
    (r'i=~"\s"', [" ", "\v", "\u00a0"]),
    (r'i=~"\D"', ["١", "1"]),
    (r'i=~"[\d\-]+"', ["1-2", "١"]),
    ('i=~"a|b"', ["a", "ab"]),
    ('i!~"db|infra"', ["db", "web", "dbx"]),
    ('i=~"(?i)WEB"', ["web", "WEB", "wEbX"]),
    ('i=~"(?i)k"', ["\u212a", "K"]),
    ('i=~"a(?i)b|c"', ["aB", "C", "c", "Ab"]),
    ('i=~"a{,2}"', ["a{,2}", "aa", ""]),
    ('i=~"x$"', ["x", "x\n"]),
    (r'i=~"a\z"', ["a"]),
    (r'i=~"\Qa.b\E"', ["a.b", "axb"]),
    (r'i=~"\x{41}\x42"', ["AB"]),
    (r'i=~"\101\0"', ["A"]),
    (r'i=~"\12"', ["\n"]),
    ('i=~"(?s:.)"', ["\n"]),
    ('i=~"."', ["\n", "x"]),
    ('i=~"(?m)^b$"', ["a\nb", "b"]),
    (r'i=~"\bfoo\b"', ["foo"]),
    (r'i=~".*\bx"', ["éx", "a x"]),
    ('i=~"[a-]"', ["-", "a", "b"]),
    ('i=~"[]a]"', ["]", "a"]),
    ('i=~"[[a]+"', ["[a[", "b"]),
    ('i=~"(?P<n>a)+"', ["aa"]),
    ('i=~"x*?"', ["", "xx"]),
    (r'i=~"a\.b"', ["a.b", "axb"]),
    (r'i=~"\a\t"', ["\x07\t"]),
    ('i=~""', ["", "x"]),
    ('i=~"^web$"', ["web"]),
    ('i=~"a{2}"', ["aa", "a"]),
    ('i=~"a{2,}b{1,3}"', ["aaab", "abb"]),
    ("", [{"z": "1"}]),
    ('i=~"^*a"', ["a", ""]),
    ('i=~"a$*"', ["a"]),
    ('i=~"(?:)"', ["", "a"]),
    ('i=~"()|a"', ["", "a"]),
    ('i=~"(|a)b"', ["b", "ab"]),
    ('i=~"x{2}?y{2,}?"', ["xxyy", "xy"]),
    (r'i=~"[\x{41}-\x{43}]+"', ["ABC", "D"]),
    ('i=~"[[:alpha:]-]+"', ["a-b", "a1"]),
    ('i=~"a{0}b"', ["b", "ab"]),
    ('i=~"a{1000}"', ["a"]),
    ('i=~"(?i:a)b"', ["Ab", "AB"]),
    ('i=~"(?i)a(?-i)b"', ["Ab", "AB"]),
    ('i=~"(?i)(?-i:a)b"', ["aB", "AB"]),
    ('i=~"(?P<x1>a)(?P<_y>b)"', ["ab"]),
    ('i=~"(?P<1a>a)"', ["a"]),
    ('i=~"(?P<n>a)(?P<n>b)"', ["ab"]),
    ('i=~"a)|(b"', ["axx", "xxb", "x"]),
    (r'i=~"\Qa)\E"', ["a)", "a"]),
    (r'i=~"\b*x\A+"', ["x"]),
    (r'i=~"\_"', ["_"]),
    ('i=~"(?)a"', ["a"]),
    ('i=~"(?i)"', ["", "a"]),
    ('i=~"aK(?m)?b"', ["ab", "aKb", "aKKb"]),
    ('i=~"a*(?i)*B"', ["aab", "B"]),
    (r'i=~"\<\ \#"', ["< #"]),
    (r'i=~"\Qa.b"', ["a.b", "axb"]),
    ('i=~"(?s)a.b"', ["a\nb"]),
    ('i=~"(?m)a$"', ["a"]),
    ('i=~"[^a]"', ["\n", "a"]),
    ('i=~"[a-c&&b]"', ["&", "b", "d"]),
    ('i=~"[a--]"', ["-", "b"]),
    ('i=~"[\\]]"', ["]", "\\"]),
    # rejected by Alertmanager
    ("foo=a,b", []),
    ('foo=a"b', []),
    ('foo="abc', []),
    ("foo", []),
    ("1a=b", []),
    ('a="1",,b="2"', []),
    ('i=~"(?=x)"', []),
    ('i=~"(?<!x)y"', []),
    (r'i=~"(a)\1"', []),
    (r'i=~"\8"', []),
    ('i=~"(?>a)"', []),
    ('i=~"a**"', []),
    ('i=~"a++"', []),
    ('i=~"a{2}{3}"', []),
    ('i=~"a{1001}"', []),
    ('i=~"x{2,1}"', []),
    ('i=~"*a"', []),
    ('i=~"(a"', []),
    ('i=~"a)"', []),
    ('i=~"[z-a]"', []),
    ('i=~"[[:foo:]]"', []),
    (r'i=~"\Z"', []),
    (r'i=~"\u0041"', []),
    (r'i=~"\e"', []),
    ('i=~"(?x)a"', []),
    ('i=~"(?#c)a"', []),
    ('i=~"(?<n>a)"', []),
    ('i=~"(?(1)a|b)"', []),
    ('i=~"(?-)a"', []),
    ('i=~"(?P<>a)"', []),
    ('i=~"(?P<a>"', []),
    ('i=~"[[:alpha:]"', []),
    ('i=~"x**?"', []),
    ('i=~"x?*"', []),
    ('i=~"a{1,1001}"', []),
    ('i=~"(?P<n-x>a)"', []),
    (r'i=~"\C"', []),
    (r'i=~"\x{}"', []),
    (r'i=~"\x{110000}"', []),
    ('i=~"[a"', []),
    ('i=~"a|*"', []),
    ('i=~"x{2}*"', []),
    ('i=~"(?i"', []),
]


def _config(tmp_path, matcher: str):
    path = tmp_path / "am.yml"
    document = {
        "route": {
            "receiver": "miss",
            "routes": [{"matchers": [matcher], "receiver": "hit"}],
        },
        "receivers": [{"name": "miss"}, {"name": "hit"}],
    }
    path.write_text(json.dumps(document))  # JSON is YAML, and needs no quoting rules
    return path


@pytest.mark.parametrize(("matcher", "label_sets"), CASES, ids=[c[0] or "empty" for c in CASES])
def test_matcher_agrees_with_alertmanager(tmp_path, matcher, label_sets):
    path = _config(tmp_path, matcher)
    accepted, output = check_config(path)
    try:
        parsed = parse_matchers(matcher)
    except ValueError as exc:
        assert not accepted, f"Alertmanager accepts {matcher!r}, checkrun says: {exc}"
        return
    assert accepted, f"Alertmanager rejects {matcher!r} ({output.strip()}), checkrun accepts it"
    assert label_sets, "an accepted case needs label sets to route"
    for labels in label_sets:
        labels = {"i": labels} if isinstance(labels, str) else labels
        expected = routes_test(path, labels)
        ours = ["hit"] if all_match(parsed, labels) else ["miss"]
        assert ours == expected, (
            f"{matcher!r} on {labels!r}: Alertmanager {expected}, checkrun {ours}"
        )


def test_unicode_classes_are_refused_with_the_reason():
    # Valid RE2 that Python's re cannot express: refused (documented), never misread.
    with pytest.raises(ValueError, match="Unicode classes"):
        parse_matcher(r'i=~"\pL+"')


def test_matcher_text_is_written_back_as_alertmanager_writes_it():
    matcher = parse_matcher('p="C:\\\\Temp \\"x\\"\\n"')
    assert matcher.value == 'C:\\Temp "x"\n'
    assert str(matcher) == 'p="C:\\\\Temp \\"x\\"\\n"'
