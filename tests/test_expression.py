"""
The view plugin's expressions: CoreDNS's rows (plugin/view setup_test and
view_test, plugin/pkg/expression's incidr rows, the README's examples) and
what the subset refuses rather than risk another answer than CoreDNS's.
"""

from dataclasses import dataclass

from twisted.trial import unittest

from kubernetai.expression import compile_expression, incidr
from tests.support import one_test_per_row


@dataclass
class Facts:
    """A query as the expression functions see it."""

    name: str = "example.com."
    type_name: str = "A"
    class_name: str = "IN"
    protocol: str = "udp"
    size: int = 29
    client_ip: str = "10.1.2.3"
    client_port: str = "40000"
    id: int = 4242
    opcode: int = 0
    dnssec_ok: bool = False
    bufsize: int = 1232
    server_ip: str = "127.0.0.1"
    server_port: str = "53"


# (expression, whether it is true for Facts()).
VALUES = [
    ("name() == 'example.com.'", True),
    ("name() == 'notexample.com.'", False),
    ("1", False),
    ("incidr('invalid', '1.2.3.0/24')", False),
    ("not incidr('invalid', '1.2.3.0/24')", False),
    ("incidr('invalid', '1.2.3.0/24') or true", False),
    ("true or incidr('invalid', '1.2.3.0/24')", True),
    ("incidr(client_ip(), '10.0.0.0/8')", True),
    ("incidr(client_ip(), '10.0.0.0/24')", False),
    ("incidr(client_ip(), 'invalid')", False),
    ("type() in ['A', 'AAAA']", True),
    ("type() not in ['A', 'AAAA']", False),
    ("type() in ['MX']", False),
    ("name() matches '^abc\\\\..*\\\\.example\\\\.com\\\\.$'", False),
    ("name() matches '^example\\\\.com\\\\.$'", True),
    ("name() matches 'EXAMPLE'", False),
    ("name() not matches 'zzz'", True),
    ("name() matches '^(ex|abc)ample\\\\.(com|org)\\\\.$'", True),
    ("name() matches '^[a-z]{2,9}\\\\.c(o)?m\\\\.$'", True),
    ("name() matches '(ample)?\\\\.com'", True),
    ("(type() == 'A' && name() == 'example.com.') || client_ip() == '1.2.3.4'", True),
    ("(type() == 'MX' && name() == 'example.com.') || client_ip() == '1.2.3.4'", False),
    ("type() == 'A' and proto() == 'udp' and port() == '40000'", True),
    ("!(proto() == 'tcp')", True),
    ("not (class() != 'IN')", True),
    ("server_ip() == '127.0.0.1' && server_port() == '53'", True),
    ("id() == 4242 and opcode() == 0 and size() == 29", True),
    ("bufsize() >= 1232 and bufsize() < 4096", True),
    ("bufsize() > 1232", False),
    ("do()", False),
    ("!do()", True),
    ("!!!do()", True),
    ("not not do()", False),
    ("do() == false", True),
    ("name() endsWith '.com.' and name() startsWith 'ex' and name() contains 'ample'", True),
    ("name() not endsWith '.com.'", False),
    ("metadata('view/name') == ''", True),
    ("metadata('view/name') == 'not-the-view-name'", False),
    ('name() == "example.com."', True),
    ("'a\\tb' == \"a\\tb\"", True),
    ("size() in [29, 30]", True),
    ("true", True),
    ("false", False),
]

# (expression, part of the reason it is refused): errors of expr, or outside the subset.
REFUSED = [
    ("invalid expression", "unknown name invalid"),
    ("", "empty expression"),
    ("name", "is a function"),
    ("name() == 1", "mismatched types string and int"),
    ("name() ==", "unexpected end"),
    ("name(1)", "takes 0 arguments"),
    ("incidr(client_ip())", "takes 2 arguments"),
    ("incidr(1, '10.0.0.0/8')", "argument 1 of incidr() must be a string"),
    ("name() =~ 'x'", "unsupported character"),
    ("not name()", "not on a string"),
    ("!name() == 'x'", "not on a string"),
    ("name() and true", "mismatched types string and bool"),
    ("type() in ['A', 1]", "all of one type"),
    ("type() in [name()]", "literals"),
    ("type() in 'A'", "needs an array"),
    ("size() in ['29']", "needs an array of int"),
    ("['A'] == ['A']", "only supported on the right"),
    ("name() matches name()", "string literal"),
    ("name() matches '(a)\\\\1'", "Go has no back-references"),
    ("name() matches '[[:alpha:]]'", "POSIX character classes"),
    ("name() matches 'a{,2}'", "Go reads it as text"),
    ("name() matches '*'", "nothing to repeat"),
    ("name() matches '(a+)+b'", "exponential"),
    ("name() matches '(a|aa)*b'", "exponential"),
    ("name() matches '.*a.*b.+c'", "3 long repeats"),
    ("name() matches '" + "(" * 2000 + "'", "not supported by kubernetai"),
    ("name() == 'a\\.b'", "unsupported escape"),
    ("name() == 'x' == true", "chained"),
    ("size() + 1 == 2", "unsupported character '+'"),
    ("size() == 1.5", "unsupported number"),
    ("len(name()) == 3", "unknown name len"),
    ("name() not == 'x'", "after 'not'"),
    ("(name() == 'x'", "unexpected end"),
    ("name() == 'x')", "unexpected token ')'"),
    ("nil == nil", "unknown name nil"),
    ("(" * 100 + "true" + ")" * 100, "nested more than 64 deep"),
    ("!" * 300 + "true", "longer than 256 tokens"),
    (" and ".join(["true"] * 200), "longer than 256 tokens"),
]

# CoreDNS's TestInCidr rows and Go's readings of odd addresses: (ip, cidr, result or None for an error).
CIDRS = [
    ("1.2.3.4", "1.2.0.0/16", True),
    ("10.2.3.4", "1.2.0.0/16", False),
    ("1:2::3:4", "1:2::/64", True),
    ("A:2::3:4", "1:2::/64", False),
    ("1.2.3.4", "invalid", None),
    ("invalid", "1.2.0.0/16", None),
    ("::ffff:1.2.3.4", "1.2.0.0/16", True),
    ("::ffff:1.2.3.4", "::ffff:0:0/96", False),
    ("1.2.3.4", "1.2.3.4", None),
    ("1.2.3.4", "1.2.3.0/255.255.255.0", None),
    ("fe80::1%eth0", "fe80::/10", None),
    ("1.2.3.4", "1.2.3.9/24", True),
]


@one_test_per_row("values", VALUES, lambda row: row[0])
@one_test_per_row("refused", REFUSED, lambda row: row[0] or "empty")
@one_test_per_row("incidr", CIDRS, lambda row: f"{row[0]} {row[1]}")
class ExpressionTests(unittest.SynchronousTestCase):
    def check_values(self, row):
        text, expected = row
        self.assertIs(compile_expression(text).matches(Facts()), expected, text)

    def check_refused(self, row):
        text, reason = row
        with self.assertRaises(ValueError) as raised:
            compile_expression(text)
        self.assertIn(reason, str(raised.exception), text)

    def check_incidr(self, row):
        address, cidr, expected = row
        if expected is None:
            self.assertRaises(ValueError, incidr, address, cidr)
        else:
            self.assertIs(incidr(address, cidr), expected)

    def test_regex_dollar_is_the_end_of_the_text(self):
        """Go's C{$} does not match before a final newline, Python's does: it is read as Go reads it."""
        matches = compile_expression("name() matches 'a$'")
        self.assertTrue(matches.matches(Facts(name="a")))
        self.assertFalse(matches.matches(Facts(name="a\n")))

    def test_regex_space_class_is_gos(self):
        """Go's C{\\s} has no vertical tab."""
        self.assertFalse(compile_expression("name() matches '\\\\s'").matches(Facts(name="\v")))
        self.assertTrue(compile_expression("name() matches '\\\\s'").matches(Facts(name=" ")))
