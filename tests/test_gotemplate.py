"""
The pure parts of the template plugin: Go's text/template subset
(L{kubernetai.gotemplate}), Go's regexps on Python's re
(L{kubernetai.goregexp}) and zone-file records (L{kubernetai.rrtext}),
each row what Go (text/template, regexp, miekg/dns) gives for the same text.
"""

from __future__ import annotations

from twisted.names import dns
from twisted.trial.unittest import SynchronousTestCase

from kubernetai.gorender import FUNCTIONS, NO_VALUE, Struct, Uint16, execute
from kubernetai.gotemplate import FUNCTION_NAMES, TemplateError, go_string, parse
from kubernetai.goregexp import GoRegexpError, compile_go
from kubernetai.rrtext import RRTextError, parse_rr
from tests.support import one_test_per_row

DATA = Struct("*template.templateData", {
    "Name": "ip-10-95-12-8.example.",
    "Zone": "example.",
    "Match": ["ip-10-95-12-8.example.", "", "95"],
    "Group": {"0": "ip-10-95-12-8.example.", "b": "95", "c": "12"},
    "Question": Struct("*dns.Question", {"Name": "IP-10-95-12-8.example.", "Qtype": Uint16(1)},
                       text=";IP-10-95-12-8.example.\tIN\t A"),
}, {"Meta": ((str,), lambda name: "m-" + name)})

# (template, what it renders)
RENDERED = [
    ("{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}", "ip-10-95-12-8.example. 60 IN A 10.95.12"),
    ("{{.Group.d}}", "<no value>"),
    ("{{ index .Match 2 }}|{{ index .Group \"b\" }}|{{ index .Group \"zz\" }}|", "95|95||"),
    ("{{ parseInt .Group.b 16 8 }}", "149"),
    ('{{ parseInt "0x_1f" 0 8 }} {{ parseInt "017" 0 64 }} {{ parseInt "z" 36 0 }}', "31 15 35"),
    ("a  {{- .Zone -}}  b", "aexample.b"),
    ("a {{- .Zone }} b", "aexample. b"),
    ("{{ if .Group.b }}yes{{ else }}no{{ end }}", "yes"),
    ("{{ if .Group.zz }}a{{ else if .Group.c }}c{{ else }}d{{ end }}", "c"),
    ("{{ if index .Match 1 }}a{{ else }}empty{{ end }}", "empty"),
    ("{{ range .Match }}[{{ . }}]{{ end }}", "[ip-10-95-12-8.example.][][95]"),
    ("{{ range .Group }}{{ . }},{{ end }}", "ip-10-95-12-8.example.,95,12,"),
    ('{{ .Meta "foo" }}', "m-foo"),
    ("{{ .Meta (index .Match 2) }}", "m-95"),
    ("{{ .Question.Name }} {{ .Question.Qtype }} {{ .Question }}",
     "IP-10-95-12-8.example. 1 ;IP-10-95-12-8.example.\tIN\t A"),
    ("{{ .Match }} {{ .Group }}", "[ip-10-95-12-8.example.  95] map[0:ip-10-95-12-8.example. b:95 c:12]"),
    ('{{ "a\\tb" }}{{ `\\t` }}{{ 010 }}{{ true }}', "a\tb\\t8true"),
    ("{{ .Group.c | index .Group }}|{{ .Group.b | printf }}", None),
    ("{{ .Group.c | index .Group }}|", "|"),
    ("{{ .Group.zz.b }}|{{ .Name | }}|{{ index .Question.Name 2 }}", "<no value>|ip-10-95-12-8.example.|45"),
    ("{{ range 3 }}{{ . }}{{ else }}none{{ end }}{{ range .Group.zz }}{{ else }}none{{ end }}", "012none"),
]

# (template, Go's execution error)
FAILED = [
    ('{{ .Name }} 60 IN TXT "{{ index .Match 5 }}"',
     'template: t:1:26: executing "t" at <index .Match 5>: error calling index: index out of range: 5'),
    ('{{ parseInt "gg" 16 8 }}',
     'template: t:1:3: executing "t" at <parseInt "gg" 16 8>: error calling parseInt: strconv.ParseUint: parsing '
     '"gg": invalid syntax'),
    ('{{ parseInt "1ff" 16 8 }}',
     'template: t:1:3: executing "t" at <parseInt "1ff" 16 8>: error calling parseInt: strconv.ParseUint: parsing '
     '"1ff": value out of range'),
    ("{{ parseInt }}", 'template: t:1:3: executing "t" at <parseInt>: wrong number of args for parseInt: want 3 got 0'),
    ("{{ parseInt .Group.zz 16 8 }}", 'template: t:1:18: executing "t" at <.Group.zz>: invalid value; expected string'),
    ("{{ .Group.b | parseInt 16 8 }}", 'template: t:1:23: executing "t" at <16>: expected string; found 16'),
    ("{{ parseInt .Question.Qtype 10 8 }}",
     'template: t:1:21: executing "t" at <.Question.Qtype>: wrong type for value; expected string; got uint16'),
    ("\n{{ .Grup.d }}",
     'template: t:2:8: executing "t" at <.Grup.d>: can\'t evaluate field Grup in type *template.templateData'),
    ("{{ .Question.Nam }}",
     'template: t:1:12: executing "t" at <.Question.Nam>: can\'t evaluate field Nam in type *dns.Question'),
    ('{{ index "ab" 2 }}',
     'template: t:1:3: executing "t" at <index "ab" 2>: error calling index: index out of range: 2'),
    # Ours: bounds on the time and memory a template takes.
    ("{{ range 300 }}{{ range 300 }}{{ end }}{{ end }}",
     'template: t:1:24: executing "t" at <300>: more than 65535 turns of range are not supported by kubernetai'),
    ("{{ range 60000 }}xx{{ end }}",
     'template: t:1:17: executing "t" at <xx>: more than 65535 characters of text are not supported by kubernetai'),
    ("{{ .Name 1 }}",
     'template: t:1:3: executing "t" at <.Name>: Name has arguments but cannot be invoked as function'),
    ("{{ .Meta 1 }}", 'template: t:1:9: executing "t" at <1>: expected string; found 1'),
    ('{{ "x" 1 }}', 'template: t:1:3: executing "t" at <"x">: can\'t give argument to non-function "x"'),
    ('{{ index .Match "a" }}',
     'template: t:1:3: executing "t" at <index .Match "a">: error calling index: cannot index slice/array with type '
     'string'),
]

# (template, what parsing says)
REFUSED = [
    ("{{", "template: t:1: unclosed action"),
    ("{{ notAFunction }}", 'template: t:1: function "notAFunction" not defined'),
    ("{{ end }}", "template: t:1: unexpected {{end}}"),
    ("{{ if .Name }}", "template: t:1: unexpected EOF"),
    ("{{ }}", "template: t:1: missing value for command"),
    ("{{ .Name | 1 }}", "template: t:1: non executable command in pipeline stage 2"),
    ("{{ with .Name }}{{ end }}", "template: t:1: {{with}} is not supported by kubernetai"),
    ("{{ $x := 1 }}", "template: t:1: variables ($x) are not supported by kubernetai"),
    ("{{/* note */}}", "template: t:1: comments ({{/* */}}) are not supported by kubernetai"),
    ('{{ eq .Type "A" }}', 'template: t:1: function "eq" is not supported by kubernetai'),
    ("{{ 1.5 }}", "template: t:1: the constant 1.5 is not supported by kubernetai (integers only)"),
    ("{{ (.Group).b }}",
     "template: t:1: fields of a function's or parenthesized value (.b) are not supported by kubernetai"),
    ('{{ "\\q" }}', 'template: t:1: malformed string: "\\q"'),
    ('{{ "x".Name }}', "template: t:1: unexpected .Name in operand"),
    ("{{ 08 }}", 'template: t:1: illegal number syntax: "08"'),
    ("{{ " + "(" * 65 + ".Name" + ")" * 65 + " }}",
     "template: t:1: more than 64 levels of nesting are not supported by kubernetai"),
    ("{{ .Name ) }}", "template: t:1: unexpected right paren"),
    ("{{ index.Name }}", "template: t:1: fields of a function's or parenthesized value (.Name) are not supported by "
                         "kubernetai"),
]

# (Go pattern, a name, what Go's FindStringSubmatch gives; None: no match)
MATCHED = [
    ("(^|[.])ip-(?P<a>[0-9]*)[.]example[.]$", "x.ip-10.example.", [".ip-10.example.", ".", "10"]),
    ("(?<a>b)", "abc", ["b", "b"]),
    ("example[.]\\z", "example.", ["example."]),
    ("(?i)EXAMPLE", "example.", ["example"]),
    # Go's $ is the end of the text (Python's also matches before a final newline), but of a line
    # under a leading (?m); Go's \s has no vertical tab.
    ("a$", "a\n", None),
    ("(?m)a$", "a\nb", ["a"]),
    ("\\s", "\v", None),
    ("[\\s]", "\v", None),
    ("a\\sb", "a b", ["a b"]),
    ("\\S", "\v", ["\v"]),
    ("\\w+", "é-x", ["x"]),
    ("a{2}", "a", None),
    ("$^", "x.", None),
    ("\\101\\12", "xA\n", ["A\n"]),
    ("[\\]a-]+", "x]a-", ["]a-"]),
    # What the backtracking guard lets through: repeats a character they cannot match ends, short ones.
    ("^(?P<ip>[0-9]{1,3}(-[0-9]{1,3}){3})[.](?P<id>[a-z]{3})[.]$", "10-0-0-1.abc.", ["10-0-0-1.abc.", "10-0-0-1",
                                                                                   "-1", "abc"]),
    ("^(?P<d>[0-9]*)[.](?P<c>[0-9]*)[.](?P<b>[0-9]*)[.](?P<a>[0-9]*)[.]in-addr[.]arpa[.]$",
     "4.3.2.1.in-addr.arpa.", ["4.3.2.1.in-addr.arpa.", "4", "3", "2", "1"]),
    ("-*\\.+[a-z]*x", "--..ax", ["--..ax"]),
    (".*.*x", "ax", ["ax"]),
]

# (Go pattern, why refused)
BAD_PATTERNS = [
    ("[[:alpha:]]", "POSIX character classes ([[:name:]]) are not supported by kubernetai"),
    ("[\\S]", "\\S inside a character class is not supported by kubernetai"),
    ("(?m:a$)", "$ with an m flag that does not start the pattern ((?m) first) is not supported by kubernetai"),
    ("a{,3}", "the repeat {,3} is not supported by kubernetai (Go reads it as text)"),
    ("(?=a)", "invalid or unsupported Perl syntax: (?=a"),
    ("(a)\\1", "invalid escape sequence: \\1 (Go has no back-references)"),
    ("a*+", "invalid nested repetition operator: *+"),
    ("(?x)a", "invalid or unsupported Perl syntax: (?x)"),
    ("a{1001}", "invalid repeat count: {1001}"),
    ("(?P<x>", "missing ), unterminated subpattern at position 0 (Python's re does not take it: not supported by "
               "kubernetai)"),
    ("[\\b]", "invalid or unsupported escape sequence: \\b"),
    ("a(?i)b", "flags (?i) after the start of the pattern are not supported by kubernetai (write (?i:...))"),
    ("\\pL", "Unicode classes (\\p...) are not supported by kubernetai"),
    ("(a+)+b", "a repeated group holds a repeat or '|': Python's backtracking could take exponential time on one "
               "name (Go's RE2 does not backtrack): not supported by kubernetai"),
    ("(?:x|y)*$", "a repeated group holds a repeat or '|': Python's backtracking could take exponential time on "
                  "one name (Go's RE2 does not backtrack): not supported by kubernetai"),
    (".*.*.*x", "3 long repeats with nothing between them that ends one: Python's backtracking could take seconds "
                "on one name (Go's RE2 does not backtrack): not supported by kubernetai"),
    ("^(?P<x>.*)-(?P<y>.*)-(?P<z>.*)$", "3 long repeats with nothing between them that ends one: Python's "
                                        "backtracking could take seconds on one name (Go's RE2 does not "
                                        "backtrack): not supported by kubernetai"),
]

# (text, the record as Twisted shows it, its TTL and class), each as miekg/dns v1.1.72's NewRR reads it
# (a differential run of 120,000 random records: every one both take reads alike)
RECORDS = [
    ("ip-10-95-12-8.example. 60 IN A 10.95.12.8", "<A address=10.95.12.8 ttl=60>", 60, dns.IN),
    ("example. IN NS ns0.example.com.", "<NS name=ns0.example.com ttl=3600>", 3600, dns.IN),
    ("x. AAAA ::1", "<AAAA address=::1 ttl=3600>", 3600, dns.IN),
    ("invalid. 60 IN SOA ns.invalid. hostmaster.invalid. (1 60 60\n 60 60)",
     "<SOA mname=ns.invalid rname=hostmaster.invalid serial=1 refresh=60 retry=60 expire=60 minimum=60 ttl=60>",
     60, dns.IN),
    ('coredns.invalid. 60 CH TXT "test" more', "<TXT data=['test', 'more'] ttl=60>", 60, dns.CH),
    ("foogle.com IN 1h CNAME google.com", "<CNAME name=google.com ttl=3600>", 3600, dns.IN),
    ("x. 60 MX 10 x. ; comment", "<MX preference=10 name=x ttl=60>", 60, dns.IN),
    ("_s._tcp.x. 5 SRV 1 2 53 t.", "<SRV priority=1 weight=2 target=t port=53 ttl=5>", 5, dns.IN),
    ("x. 1 PTR a.b\nfoo. A 1.2.3.4", "<PTR name=a.b ttl=1>", 1, dns.IN),
    ("x. 1h30 CLASS3 TYPE16 \"\\999\"", "<TXT data=['\\xe7'] ttl=3630>", 3630, dns.CH),
    ("x. in 1m1m hinfo cpu", "<HINFO cpu='cpu' os='' ttl=120>", 120, dns.IN),
    ("x. HINFO \"a b\" c d", "<HINFO cpu='a b' os='c d' ttl=3600>", 3600, dns.IN),
    ("x. AAAA ::ffff:1.2.3.4", "<AAAA address=::ffff:1.2.3.4 ttl=3600>", 3600, dns.IN),
]

# (text, why it is no record)
NOT_RECORDS = [
    ("test.example.", "no record type in 'test.example.'"),
    ("x. 60 IN A 10.95.12.<no value>", "bad A record in 'x. 60 IN A 10.95.12.<no value>': expected 1 field(s), got 2"),
    (" x. A 1.2.3.4", "no owner name in ' x. A 1.2.3.4'"),
    ("x. LOC 1 2", "record type 'LOC' is not supported by kubernetai"),
    ("x. A ::1", "bad A record in 'x. A ::1': not an IPv4 address: '::1'"),
    (".example. A 1.2.3.4", "bad name '.example.'"),
    ("x. SOA a. b. (1 2 3 4 5", "unbalanced brace in 'x. SOA a. b. (1 2 3 4 5'"),
    ("x. 4294967296 A 1.2.3.4", "not a TTL: '4294967296'"),
    ("x..y. A 1.2.3.4", "bad name 'x..y.'"),
    ("a\\046b. A 1.2.3.4", "a name with a dot inside a label ('a\\\\046b.') is not supported by kubernetai"),
    ("x. ANY A 1.2.3.4", "record type 'ANY' is not supported by kubernetai"),
    ("x. 60 IN A", "a record without data ('x. 60 IN A') is not supported by kubernetai"),
    ("x. SOA ns. host. 1 60", "an SOA record without all its times is not supported by kubernetai"),
    ("x. 1x A 1.2.3.4", "not a TTL: '1x'"),
]


@one_test_per_row("rendered", RENDERED, lambda row: row[0])
@one_test_per_row("failed", FAILED, lambda row: row[0])
@one_test_per_row("refused", REFUSED, lambda row: row[0])
class GoTemplateTests(SynchronousTestCase):
    """Templates rendered, failing and refused as Go's text/template renders, fails and refuses them."""

    def check_rendered(self, row):
        text, rendered = row
        if rendered is None:  # a construct that parses but must not run differently: refused at parse time
            self.assertRaises(TemplateError, parse, "t", text)
            return
        self.assertEqual(execute(parse("t", text), DATA), rendered)

    def check_failed(self, row):
        text, error = row
        template = parse("t", text)
        self.assertEqual(str(self.assertRaises(TemplateError, execute, template, DATA)), error)

    def check_refused(self, row):
        text, error = row
        self.assertEqual(str(self.assertRaises(TemplateError, parse, "t", text)), error)

    def test_go_string(self):
        """What CoreDNS's failure metrics label a template with: Go's Tree.Root.String()."""
        template = parse("t", '{{ .Name }} 60 IN TXT "{{ index .Match (parseInt "1" 10 8) }}"'
                              "{{ if .Zone }}a{{ else }}b{{ end }}")
        self.assertEqual(go_string(template),
                         '{{.Name}} 60 IN TXT "{{index .Match (parseInt "1" 10 8)}}"{{if .Zone}}a{{else}}b{{end}}')

    def test_no_value(self):
        self.assertEqual(repr(NO_VALUE), "<no value>")

    def test_functions_parsed_are_those_run(self):
        self.assertEqual(set(FUNCTIONS), FUNCTION_NAMES)


@one_test_per_row("matched", MATCHED, lambda row: row[0])
@one_test_per_row("bad", BAD_PATTERNS, lambda row: row[0])
class GoRegexpTests(SynchronousTestCase):
    """Go's patterns: matched as Go matches them, or refused."""

    def check_matched(self, row):
        pattern, name, groups = row
        found = compile_go(pattern).search(name)
        self.assertEqual(None if found is None else [found.group(0), *found.groups()], groups)

    def check_bad(self, row):
        pattern, error = row
        self.assertEqual(str(self.assertRaises(GoRegexpError, compile_go, pattern)), error)


@one_test_per_row("record", RECORDS, lambda row: row[0])
@one_test_per_row("not", NOT_RECORDS, lambda row: row[0])
class RRTextTests(SynchronousTestCase):
    """Zone-file text read as miekg/dns's NewRR reads it, or refused."""

    def check_record(self, row):
        text, shown, ttl, cls = row
        record = parse_rr(text)
        self.assertEqual((repr(record.payload), record.ttl, record.cls), (shown, ttl, cls))

    def check_not(self, row):
        text, error = row
        self.assertEqual(str(self.assertRaises(RRTextError, parse_rr, text)), error)
