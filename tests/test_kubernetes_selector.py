# -*- test-case-name: tests.test_kubernetes_selector -*-
"""
Tests for L{kubernetai.kubernetes.selector}: label selectors parsed,
rendered and matched as apimachinery does, and refused with its messages.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from kubernetai.kubernetes.selector import (
    DOES_NOT_EXIST,
    EQUALS,
    EXISTS,
    IN,
    NOT_EQUALS,
    NOT_IN,
    Requirement,
    format_label_selector,
    label_selector_matches,
    parse_label_selector,
)
from tests.support import one_test_per_row
from tests.test_kubernetes_config import error_of

# selector text -> its requirements, sorted by key, and its canonical form
SELECTORS = [
    ("", (), ""),
    ("environment=prod", (Requirement("environment", EQUALS, ("prod",)),), "environment=prod"),
    ("environment==prod", (Requirement("environment", EQUALS, ("prod",)),), "environment=prod"),
    ("tier != frontend", (Requirement("tier", NOT_EQUALS, ("frontend",)),), "tier!=frontend"),
    ("a=", (Requirement("a", EQUALS, ("",)),), "a="),
    ("a!=,b", (Requirement("a", NOT_EQUALS, ("",)), Requirement("b", EXISTS)), "a!=,b"),
    ("partition", (Requirement("partition", EXISTS),), "partition"),
    ("!partition", (Requirement("partition", DOES_NOT_EXIST),), "!partition"),
    ("  ! partition\t", (Requirement("partition", DOES_NOT_EXIST),), "!partition"),
    (
        "x in (foo,,baz),y,z notin ()",
        (Requirement("x", IN, ("", "baz", "foo")), Requirement("y", EXISTS), Requirement("z", NOT_IN, ("",))),
        "x in (,baz,foo),y,z notin ()",
    ),
    ("x in (a,)", (Requirement("x", IN, ("", "a")),), "x in (,a)"),
    ("x in (,a)", (Requirement("x", IN, ("", "a")),), "x in (,a)"),
    ("x in (b, a, b)", (Requirement("x", IN, ("a", "b")),), "x in (a,b)"),
    ("x notin(in,notin)", (Requirement("x", NOT_IN, ("in", "notin")),), "x notin (in,notin)"),
    ("in", (Requirement("in", EXISTS),), "in"),
    ("x=in", (Requirement("x", EQUALS, ("in",)),), "x=in"),
    (
        "example.com/Tier-1.a_b=V.1_x-2",
        (Requirement("example.com/Tier-1.a_b", EQUALS, ("V.1_x-2",)),),
        "example.com/Tier-1.a_b=V.1_x-2",
    ),
    (
        "b=2,a=1,b in (3),!c",
        (
            Requirement("a", EQUALS, ("1",)),
            Requirement("b", EQUALS, ("2",)),
            Requirement("b", IN, ("3",)),
            Requirement("c", DOES_NOT_EXIST),
        ),
        "a=1,b=2,b in (3),!c",
    ),
    ("k" * 63 + "=" + "v" * 63, (Requirement("k" * 63, EQUALS, ("v" * 63,)),), "k" * 63 + "=" + "v" * 63),
]

# bad selector text -> what the error says
BAD_SELECTORS = [
    (",", "found ',', expected: !, identifier, or 'end of string'"),
    ("a,", "found '', expected: identifier after ','"),
    ("a,,b", "found ',', expected: identifier after ','"),
    ("a b", "found 'b', expected: in, notin, =, ==, !="),
    ("a=b=c", "found '=', expected: ',' or 'end of string'"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("!", "found '', expected: identifier"),
    ("!!a", "found '!', expected: identifier"),
    ("=a", "found '=', expected: !, identifier, or 'end of string'"),
    ("a=(b)", "found '(', expected: identifier"),
    ("a in b", "found 'b', expected: '('"),
    ("a notin", "found '', expected: '('"),
    ("a in (b", "found '', expected: ',', ')' or identifier"),
    ("a in (b c)", "found 'c', expected: ',', ')' or identifier"),
    ("a in (=)", "found '=', expected: ',', ')' or identifier"),
    ("a>1", "'>' isn't supported in label selectors"),
    ("a < 1", "'<' isn't supported in label selectors"),
    ("a/b/c", "invalid label key 'a/b/c': expected a name with an optional DNS subdomain prefix"),
    ("/a", "invalid label key '/a': prefix part must be non-empty"),
    ("a/", "invalid label key 'a/': name part must be non-empty"),
    ("Example.com/a", "invalid label key 'Example.com/a': prefix part must be a lowercase RFC 1123 subdomain"),
    ("-x.com/a", "invalid label key '-x.com/a': prefix part must be a lowercase RFC 1123 subdomain"),
    ("x" * 254 + "/a", "prefix part must be no more than 253 characters"),
    ("k" * 64, "name part must be no more than 63 characters"),
    ("-a", "invalid label key '-a': name part must consist of alphanumeric characters"),
    ("a.", "invalid label key 'a.': name part must consist of alphanumeric characters"),
    ("a@b=c", "invalid label key 'a@b': name part must consist of alphanumeric characters"),
    ("a=-b", "invalid value '-b' for label 'a': must be empty or consist of alphanumeric characters"),
    ("a in (ok,b_)", "invalid value 'b_' for label 'a': must be empty or consist of"),
    ("a=" + "v" * 64, "for label 'a': must be no more than 63 characters"),
]

# selector, labels -> whether they match
MATCHES = [
    ("", {}, True),
    ("", {"a": "1"}, True),
    ("a=1", {"a": "1"}, True),
    ("a=1", {"a": "2"}, False),
    ("a=1", {}, False),
    ("a=", {"a": ""}, True),
    ("a!=1", {"a": "2"}, True),
    ("a!=1", {}, True),
    ("a!=1", {"a": "1"}, False),
    ("a in (1,2)", {"a": "2"}, True),
    ("a in (1,2)", {"a": "3"}, False),
    ("a in (1,2)", {}, False),
    ("a notin (1,2)", {"a": "3"}, True),
    ("a notin (1,2)", {}, True),
    ("a notin (1,2)", {"a": "1"}, False),
    ("a", {"a": ""}, True),
    ("a", {"b": "1"}, False),
    ("!a", {"b": "1"}, True),
    ("!a", {"a": "1"}, False),
    ("a=1,!b", {"a": "1"}, True),
    ("a=1,!b", {"a": "1", "b": "2"}, False),
    ("a=1,a=2", {"a": "1"}, False),
]


@one_test_per_row("parse", SELECTORS, lambda row: row[0] or "empty")
@one_test_per_row("bad", BAD_SELECTORS, lambda row: row[0] or "empty")
@one_test_per_row("matches", MATCHES, lambda row: f"{row[0]} {row[1]}")
class LabelSelectorTests(SynchronousTestCase):
    def check_parse(self, row):
        text, requirements, canonical = row
        parsed = parse_label_selector(text)
        self.assertEqual(parsed, requirements, text)
        self.assertEqual(format_label_selector(parsed), canonical, text)
        self.assertEqual(parse_label_selector(canonical), parsed, text)

    def check_bad(self, row):
        text, message = row
        self.assertIn(message, error_of(parse_label_selector, text))

    def check_matches(self, row):
        text, labels, expected = row
        matches = label_selector_matches(parse_label_selector(text), labels)
        self.assertEqual(matches, expected, (text, labels))
