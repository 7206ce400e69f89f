# -*- test-case-name: tests.test_corefile -*-
"""
Tests for L{kubernetai.corefile}: Corefile text in, server blocks out, and
an error naming file and line for every kind of mistake.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from kubernetai.corefile import CorefileError, Directive, ServerBlock, load_corefile, parse_corefile
from kubernetai.zones import ZoneAddress, normalize_zone, reverse_zones
from tests.support import one_test_per_row


def shape(directives: tuple[Directive, ...]) -> list:
    """Directives as their lines ("name arg..."), a block as (line, [its lines])."""
    lines = []
    for directive in directives:
        line = " ".join((directive.name,) + directive.args)
        lines.append((line, shape(directive.block)) if directive.block else line)
    return lines


def summary(blocks: list[ServerBlock]) -> list[tuple[str, list]]:
    """Each block as its addresses ("dns://zone:port ...") and the shape of its directives."""
    return [(" ".join(str(a) for a in block.addresses), shape(block.directives)) for block in blocks]


K3S = """\
.:53 {
    errors
    health
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
    }
    hosts /etc/coredns/NodeHosts {
      ttl 60
      reload 15s
      fallthrough
    }
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
    import /etc/coredns/custom/*.override
}
import /etc/coredns/custom/*.server
"""

KUBEADM = """\
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
"""

KUBEADM_DIRECTIVES = [
    "errors",
    ("health", ["lameduck 5s"]),
    "ready",
    (
        "kubernetes cluster.local in-addr.arpa ip6.arpa",
        ["pods insecure", "fallthrough in-addr.arpa ip6.arpa", "ttl 30"],
    ),
    "prometheus :9153",
    ("forward . /etc/resolv.conf", ["max_concurrent 1000"]),
    "cache 30",
    "loop",
    "reload",
    "loadbalance",
]

TEMPLATE = r"""
. {
    template IN A example.org {
        match "^(?P<name>.*)\.example\.org\.$"
        answer "{{ .Name }} 60 IN A 10.0.0.1"
        fallthrough
    }
    outer {
        middle one {
            inner two {
                leaf three
            }
        }
    }
}
"""

# (what the row shows, Corefile, [(addresses, directives) per server block])
PARSES = [
    ("the kubeadm default", KUBEADM, [("dns://.:53", KUBEADM_DIRECTIVES)]),
    ("an empty file", "", []),
    ("only comments", "# nothing\n   # to see here\n\n", []),
    ("a lone block without braces", ".:53\nwhoami\nlog\n", [("dns://.:53", ["whoami", "log"])]),
    ("keys and nothing else", ".:53\n", [("dns://.:53", [])]),
    ("an empty block", ". {}\n", [("dns://.:53", [])]),
    ("'{' on the line after the keys", ".\n{\n  whoami\n}\n", [("dns://.:53", ["whoami"])]),
    (
        "several keys and ports",
        "example.org example.net:1053 dns://.:5300 {\n  whoami\n}\n",
        [("dns://example.org.:53 dns://example.net.:1053 dns://.:5300", ["whoami"])],
    ),
    (
        "keys split by commas over several lines",
        "example.org,\n  example.net, Example.COM.:1053,cluster.local {\n  whoami\n}\n",
        [
            (
                "dns://example.org.:53 dns://example.net.:53 dns://example.com.:1053 "
                "dns://cluster.local.:53",
                ["whoami"],
            )
        ],
    ),
    (
        "the root zone written every way",
        ". {}\n:1053 {}\ndns://.:1054 {}\ndns://:1055 {\n}\n.:1056 {}\n",
        [
            ("dns://.:53", []),
            ("dns://.:1053", []),
            ("dns://.:1054", []),
            ("dns://.:1055", []),
            ("dns://.:1056", []),
        ],
    ),
    (
        "reverse-zone keys, with and without a port",
        "10.0.0.0/22:5300 fd00::/64:5300 {\n}\n",
        [
            (
                "dns://0.0.10.in-addr.arpa.:5300 dns://1.0.10.in-addr.arpa.:5300 "
                "dns://2.0.10.in-addr.arpa.:5300 dns://3.0.10.in-addr.arpa.:5300 "
                "dns://0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.:5300",
                [],
            )
        ],
    ),
    (
        "blocks nested in blocks",
        TEMPLATE,
        [
            (
                "dns://.:53",
                [
                    (
                        "template IN A example.org",
                        [
                            r"match ^(?P<name>.*)\.example\.org\.$",
                            "answer {{ .Name }} 60 IN A 10.0.0.1",
                            "fallthrough",
                        ],
                    ),
                    ("outer", [("middle one", [("inner two", ["leaf three"])])]),
                ],
            )
        ],
    ),
    (
        "blocks on one line, empty blocks",
        ". {\n  forward . 1.1.1.1 { max_fails 3 }\n  health {}\n  ready { }\n}\n",
        [("dns://.:53", [("forward . 1.1.1.1", ["max_fails 3"]), "health", "ready"])],
    ),
    (
        "a whole block on one line, and two blocks on one line",
        ". { whoami }\na.org {} b.org { log }\n",
        [("dns://.:53", ["whoami"]), ("dns://a.org.:53", []), ("dns://b.org.:53", ["log"])],
    ),
    (
        "comments: whole lines, after directives, and a '#' inside a word",
        '# top\n. { # opens\n  log # all\n  rewrite name foo#bar baz\n  hosts "#kept"\n}\n',
        [("dns://.:53", ["log", "rewrite name foo", "hosts #kept"])],
    ),
    (
        "Windows line endings and a byte order mark",
        "\ufeff.:53 {\r\n  errors\r\n  cache 30\r\n}\r\n",
        [("dns://.:53", ["errors", "cache 30"])],
    ),
    (
        "the same zone and port twice when bind tells them apart",
        ". {\n  bind 127.0.0.1\n}\n. {\n  bind 127.0.0.2\n}\n",
        [("dns://.:53", ["bind 127.0.0.1"]), ("dns://.:53", ["bind 127.0.0.2"])],
    ),
]

# (bad Corefile, what the error says, starting with its file and line)
ERRORS = [
    ("}\n", "Corefile:1: unexpected '}': no block is open here"),
    (". {\n  whoami\n}\n}\n", "Corefile:4: unexpected '}'"),
    (".:53\nwhoami\n}\n", "Corefile:3: unexpected '}'"),
    (
        ". {\n  health {\n    lameduck 5s\n  }\n",
        "Corefile:1: this '{' is never closed: expected '}' before the end of the file",
    ),
    (". {\n  health {\n    lameduck 5s\n}\n", "Corefile:1: this '{' is never closed"),
    (
        ". {\n  health\n  {\n    lameduck 5s\n  }\n}\n",
        "Corefile:3: unexpected '{': a block opens at the end of its directive's line",
    ),
    (
        ". {\n  forward . 1.1.1.1 { max_fails 3 } force_tcp\n}\n",
        "Corefile:2: unexpected 'force_tcp' after '}': expected the end of the line",
    ),
    ("{\n  whoami\n}\n", "Corefile:1: server block without keys: expected keys such as '.:53'"),
    ('"" {\n}\n', "Corefile:1: server block without keys"),
    ("a.org, {\n}\n", "Corefile:1: expected another key after the trailing ','"),
    ("a.org,\n", "Corefile:1: expected another key after the trailing ','"),
    (
        ". {\n  import nope\n}\n",
        "Corefile:2: import nope: no snippet (nope) is defined above and no file",
    ),
    (". {\n  import\n}\n", "Corefile:2: import takes one argument: expected a snippet name, a file"),
    (". {\n  import a b\n}\n", "Corefile:2: import takes one argument"),
    ('. {\n  import ""\n}\n', "Corefile:2: import takes one argument"),
    (
        '. {\n  whoami\n  log "{remote}\n}\n',
        "Corefile:3: unterminated quoted string: expected a closing '\"'",
    ),
    (
        "example.org:abc {\n}\n",
        "Corefile:1: invalid port 'abc' in key 'example.org:abc': expected a number from 0 to 65535",
    ),
    ("\n\nexample.org:70000 {\n}\n", "Corefile:3: invalid port '70000'"),
    ("example.org: {\n}\n", "Corefile:1: invalid port ''"),
    (
        "tls://example.org {\n}\n",
        "Corefile:1: unsupported scheme tls:// in key 'tls://example.org': only dns:// is supported",
    ),
    ("https://. {\n}\n", "Corefile:1: unsupported scheme https://"),
    ("grpc://.:443 {\n}\n", "Corefile:1: unsupported scheme grpc://"),
    ("quic://. {\n}\n", "Corefile:1: unsupported scheme quic://"),
    ("10.0.0.0/33 {\n}\n", "Corefile:1: invalid CIDR '10.0.0.0/33' in key '10.0.0.0/33'"),
    ("fd00::/129:53 {\n}\n", "Corefile:1: invalid CIDR 'fd00::/129'"),
    ("a..org {\n}\n", "Corefile:1: invalid zone 'a..org' in key 'a..org': expected a domain name"),
    (
        ". {\n}\n.:53 {\n}\n",
        "Corefile:3: cannot serve dns://.:53 - zone already defined at Corefile:1",
    ),
    ("example.org {\n}\nExample.ORG. {\n}\n", "Corefile:3: cannot serve dns://example.org.:53"),
    ("a.org b.org a.org {\n}\n", "Corefile:1: cannot serve dns://a.org.:53 - zone already defined"),
    (
        "10.0.0.0/22 {\n}\n2.0.10.in-addr.arpa {\n}\n",
        "Corefile:3: cannot serve dns://2.0.10.in-addr.arpa.:53",
    ),
    (
        "(common) {\n  log\n}\n(common) {\n  errors\n}\n",
        "Corefile:4: snippet (common) is already defined at Corefile:1",
    ),
    ("(common)\n", "Corefile:1: snippet (common) needs a block: expected '{' after it"),
    ("(common) {\n  log\n", "Corefile:1: this '{' is never closed"),
    (
        ". {\n  import common\n}\n(common) {\n  log\n}\n",
        "Corefile:2: import common: no snippet (common) is defined above",
    ),
    (
        "(a) {\n  import b\n}\n(b) {\n  import a\n}\n. {\n  import a\n}\n",
        "Corefile:5: import cycle: ",
    ),
]


@one_test_per_row("parses", PARSES, lambda row: row[0])
class ParseTests(SynchronousTestCase):
    """Corefiles that parse, compared by their blocks' zones and directive lines."""

    def check_parses(self, row) -> None:
        description, text, expected = row
        blocks = parse_corefile(text, "Corefile", environ={})
        self.assertEqual(summary(blocks), expected, description)

    def test_positions(self) -> None:
        """Blocks and directives carry the file and line where they are written."""
        [block] = parse_corefile(KUBEADM, "Corefile", environ={})
        self.assertEqual((block.keys, block.file, block.line), ((".:53",), "Corefile", 1))
        kubernetes = block.directives[3]
        self.assertEqual(
            kubernetes,
            Directive(
                name="kubernetes",
                args=("cluster.local", "in-addr.arpa", "ip6.arpa"),
                block=(
                    Directive("pods", ("insecure",), (), "Corefile", 8),
                    Directive("fallthrough", ("in-addr.arpa", "ip6.arpa"), (), "Corefile", 9),
                    Directive("ttl", ("30",), (), "Corefile", 10),
                ),
                file="Corefile",
                line=7,
            ),
        )
        self.assertEqual([d.line for d in block.directives], [2, 3, 6, 7, 12, 13, 16, 17, 18, 19])

    def test_keys_as_written(self) -> None:
        """C{keys} keeps each key as written, one per comma-separated part."""
        [block] = parse_corefile("Example.org,10.0.0.0/23:53 {\n}\n", "Corefile", environ={})
        self.assertEqual(block.keys, ("Example.org", "10.0.0.0/23:53"))
        self.assertEqual(
            block.addresses,
            (
                ZoneAddress("dns", "example.org.", 53),
                ZoneAddress("dns", "0.0.10.in-addr.arpa.", 53),
                ZoneAddress("dns", "1.0.10.in-addr.arpa.", 53),
            ),
        )

    def test_default_port(self) -> None:
        """A key without a port gets C{default_port}; a key's own port wins."""
        blocks = parse_corefile(". {}\nexample.org:53 {}\n", "Corefile", default_port=1053)
        self.assertEqual([b.addresses[0].port for b in blocks], [1053, 53])

    def test_quoted_strings(self) -> None:
        r"""Quotes keep spaces and newlines; only \" is an escape; a token's line is where it starts."""
        text = (
            ". {\n"
            '  answer "{{ .Name }} 60 IN TXT \\"hello world\\""\n'
            '  match "^a\\.b$" ""\n'
            '  log "one\n'
            'two" three\n'
            "  errors\n"
            "}\n"
        )
        [block] = parse_corefile(text, "Corefile", environ={})
        self.assertEqual(
            [(d.name, d.args, d.line) for d in block.directives],
            [
                ("answer", ('{{ .Name }} 60 IN TXT "hello world"',), 2),
                ("match", ("^a\\.b$", ""), 3),
                ("log", ("one\ntwo", "three"), 4),
                ("errors", (), 6),
            ],
        )


class EnvironmentTests(SynchronousTestCase):
    """C{{$NAME}} and C{{%NAME%}} inside any token, after it was split from the line."""

    ENVIRON = {"ZONE": "Example.org", "PORT": "1053", "UPSTREAMS": "1.1.1.1 8.8.8.8", "LEVEL": "all"}

    def test_substitution(self) -> None:
        """Keys, names and arguments; a value with spaces stays one argument; unset is empty."""
        text = (
            "{$ZONE}:{$PORT} {\n"
            "  forward . {$UPSTREAMS}\n"
            '  log {%LEVEL%} "level={$LEVEL}" {$UNSET}\n'
            "}\n"
        )
        [block] = parse_corefile(text, "Corefile", environ=self.ENVIRON)
        self.assertEqual(block.keys, ("Example.org:1053",))
        self.assertEqual(block.addresses, (ZoneAddress("dns", "example.org.", 1053),))
        self.assertEqual(
            [d.args for d in block.directives],
            [(".", "1.1.1.1 8.8.8.8"), ("all", "level=all", "")],
        )

    def test_process_environment(self) -> None:
        """Without C{environ}, the process environment is used."""
        self.patch(os, "environ", {"ZONE": "cluster.local"})
        [block] = parse_corefile("{$ZONE} {\n}\n", "Corefile")
        self.assertEqual(block.addresses[0].zone, "cluster.local.")

    def test_unset_key(self) -> None:
        """A key that substitutes to nothing leaves a block without keys."""
        error = self.assertRaises(CorefileError, parse_corefile, "{$ZONE} {\n}\n", "Corefile", environ={})
        self.assertIn("Corefile:1: server block without keys", str(error))


@one_test_per_row("refused", ERRORS, lambda row: row[1].partition(": ")[2])
class ErrorTests(SynchronousTestCase):
    """Every kind of mistake, reported at its file and line."""

    def check_refused(self, row) -> None:
        text, expected = row
        with self.assertRaises(CorefileError, msg=f"no error for {text!r}, expected {expected!r}") as raised:
            parse_corefile(text, "Corefile", environ={})
        self.assertIn(expected, str(raised.exception), text)

    def test_attributes(self) -> None:
        """C{file}, C{line} and C{message} are the parts of the error's text."""
        error = self.assertRaises(CorefileError, parse_corefile, ". {\n}\n}\n", "Corefile")
        self.assertEqual((error.file, error.line), ("Corefile", 3))
        self.assertEqual(error.message, "unexpected '}': no block is open here")
        self.assertEqual(str(error), "Corefile:3: unexpected '}': no block is open here")


class SnippetTests(SynchronousTestCase):
    """C{(name) { ... }} defines tokens that C{import name} pastes."""

    def test_snippets(self) -> None:
        text = """\
(upstream) {
    forward . 10.0.0.1 {
        max_fails 3
    }
}
(logging) { log
    import errors
}
(errors) {
    errors
}
cluster.local {
    import logging
    import upstream
    import logging
}
"""
        blocks = parse_corefile(text, "Corefile", environ={})
        self.assertEqual(
            summary(blocks),
            [
                (
                    "dns://cluster.local.:53",
                    ["log", "errors", ("forward . 10.0.0.1", ["max_fails 3"]), "log", "errors"],
                )
            ],
        )
        self.assertEqual([d.line for d in blocks[0].directives], [6, 10, 2, 6, 10])

    def test_inside_a_nested_block(self) -> None:
        """An import line inside a directive's block pastes lines of that block."""
        text = """\
(options) {
    pods insecure
    ttl 30
}
. {
    kubernetes cluster.local {
        import options
    }
}
"""
        [block] = parse_corefile(text, "Corefile", environ={})
        self.assertEqual(shape(block.directives), [("kubernetes cluster.local", ["pods insecure", "ttl 30"])])

    def test_cycle(self) -> None:
        """Snippets importing each other are an error naming the chain."""
        text = "(a) {\n  import b\n}\n(b) {\n  import a\n}\n. {\n  import a\n}\n"
        error = self.assertRaises(CorefileError, parse_corefile, text, "Corefile", environ={})
        root = os.path.realpath("Corefile")
        self.assertEqual(str(error), f"Corefile:5: import cycle: {root} -> (a) -> (b) -> (a)")

    def test_top_level(self) -> None:
        """A snippet imported at the top level pastes server blocks."""
        text = "(zones) {\n  example.org {\n    whoami\n  }\n}\nimport zones\n. {\n}\n"
        blocks = parse_corefile(text, "Corefile", environ={})
        self.assertEqual(summary(blocks), [("dns://example.org.:53", ["whoami"]), ("dns://.:53", [])])


NIBBLES_FD00 = "0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa."


# CIDR, the reverse zones it stands for.
REVERSE_ZONES = [
    ("10.0.0.0/8", ["10.in-addr.arpa."]),
    ("172.16.0.0/16", ["16.172.in-addr.arpa."]),
    ("10.1.2.0/24", ["2.1.10.in-addr.arpa."]),
    ("10.1.2.3/24", ["2.1.10.in-addr.arpa."]),
    ("10.1.2.3/32", ["3.2.1.10.in-addr.arpa."]),
    ("0.0.0.0/0", ["in-addr.arpa."]),
    (
        "10.0.0.0/22",
        [f"{i}.0.10.in-addr.arpa." for i in range(4)],
    ),
    ("172.16.0.0/12", [f"{i}.172.in-addr.arpa." for i in range(16, 32)]),
    ("fd00::/64", [NIBBLES_FD00]),
    ("fd00::/60", [NIBBLES_FD00[2:]]),
    ("fd00::/62", [f"{i}.{NIBBLES_FD00[2:]}" for i in range(4)]),
    ("fd00::/7", ["c.f.ip6.arpa.", "d.f.ip6.arpa."]),
]


@one_test_per_row("reverse_zones", REVERSE_ZONES, lambda row: row[0])
class ReverseZoneTests(SynchronousTestCase):
    """CIDR keys become the reverse zones CoreDNS's plugin/pkg/cidr makes of them."""

    def check_reverse_zones(self, row) -> None:
        cidr, zones = row
        self.assertEqual(reverse_zones(cidr), zones, cidr)

    def test_invalid(self) -> None:
        for cidr in ("10.0.0.0/33", "10.0.0/24", "example.org"):
            self.assertRaises(ValueError, reverse_zones, cidr)


# zone text, the zone it names.
ZONES = [
    ("Cluster.Local", "cluster.local."),
    ("example.org.", "example.org."),
    ("", "."),
    (".", "."),
]


@one_test_per_row("normalize_zone", ZONES, lambda row: row[0] or "empty")
class NormalizeZoneTests(SynchronousTestCase):
    def check_normalize_zone(self, row) -> None:
        text, zone = row
        self.assertEqual(normalize_zone(text), zone, text)


class ImportTests(SynchronousTestCase):
    """C{import} of files and globs, relative to the importing file."""

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.directory, "custom"))

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.directory, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def k3s_corefile(self) -> str:
        """k3s's shipped Corefile, importing its custom ConfigMap's files."""
        return self.write("Corefile", K3S.replace("/etc/coredns", self.directory))

    def test_k3s(self) -> None:
        """Overrides join the block in file-name order; servers become blocks; lines are their own."""
        self.write("custom/b.override", "rewrite name foo.example bar.example\n")
        self.write("custom/a.override", "# access log\nlog\n")
        server = self.write("custom/example.server", "example.org:53 {\n  forward . 10.0.0.1\n}\n")
        blocks = load_corefile(self.k3s_corefile(), environ={})
        self.assertEqual(
            [shape(block.directives)[-2:] for block in blocks],
            [["log", "rewrite name foo.example bar.example"], ["forward . 10.0.0.1"]],
        )
        log = blocks[0].directives[-2]
        self.assertEqual((log.file, log.line), (os.path.join(self.directory, "custom/a.override"), 2))
        self.assertEqual((blocks[1].file, blocks[1].line), (server, 1))

    def test_k3s_without_custom_files(self) -> None:
        """Globs that match nothing import nothing."""
        blocks = load_corefile(self.k3s_corefile(), environ={})
        self.assertEqual(summary(blocks)[0][1][-1], "loadbalance")
        self.assertEqual(len(blocks), 1)

    def test_relative(self) -> None:
        """A relative pattern is found beside the file that imports it, at any depth."""
        os.makedirs(os.path.join(self.directory, "sub"))
        self.write("sub/zones.conf", "import more/*.conf\n")
        os.makedirs(os.path.join(self.directory, "sub", "more"))
        self.write("sub/more/one.conf", "example.org {\n  whoami\n}\n")
        corefile = self.write("Corefile", "import {$SUB}/zones.conf\n")
        blocks = load_corefile(corefile, environ={"SUB": "sub"})
        self.assertEqual(summary(blocks), [("dns://example.org.:53", ["whoami"])])

    def test_same_file_twice(self) -> None:
        """Importing one file in two places is not a cycle."""
        self.write("common.conf", "errors\ncache 30\n")
        corefile = self.write(
            "Corefile", "a.org {\n  import common.conf\n}\nb.org {\n  import common.conf\n}\n"
        )
        blocks = load_corefile(corefile, environ={})
        self.assertEqual([shape(block.directives) for block in blocks], [["errors", "cache 30"]] * 2)

    def test_missing_file(self) -> None:
        corefile = self.write("Corefile", ". {\n  whoami\n  import extra.conf\n}\n")
        error = self.assertRaises(CorefileError, load_corefile, corefile)
        self.assertEqual((error.file, error.line), (corefile, 3))
        self.assertIn(f"no file {os.path.join(self.directory, 'extra.conf')} exists", error.message)

    def test_directory(self) -> None:
        corefile = self.write("Corefile", ". {\n  import cust*\n}\n")
        error = self.assertRaises(CorefileError, load_corefile, corefile)
        self.assertIn(f"{corefile}:2: cannot import {self.directory}/custom: Is a directory", str(error))

    def test_cycle(self) -> None:
        """Files importing each other are an error naming the chain, not a recursion crash."""
        corefile = self.write("Corefile", ". {\n  import a.conf\n}\n")
        a = self.write("a.conf", "log\nimport b.conf\n")
        b = self.write("b.conf", "errors\nimport a.conf\n")
        error = self.assertRaises(CorefileError, load_corefile, corefile)
        self.assertEqual(
            str(error),
            f"{b}:2: import cycle: {os.path.realpath(corefile)} -> {os.path.realpath(a)} -> "
            f"{os.path.realpath(b)} -> {os.path.realpath(a)}",
        )

    def test_self_import(self) -> None:
        corefile = self.write("Corefile", ". {\n}\nimport Core*\n")
        error = self.assertRaises(CorefileError, load_corefile, corefile)
        self.assertIn(f"{corefile}:3: import cycle", str(error))

    def test_missing_corefile(self) -> None:
        path = os.path.join(self.directory, "missing")
        error = self.assertRaises(CorefileError, load_corefile, path)
        self.assertEqual(
            str(error),
            f"{path}: no such Corefile: name the one to load with -c/--conf FILE (the default is ./Corefile)",
        )

    def test_unreadable_corefile(self) -> None:
        error = self.assertRaises(CorefileError, load_corefile, self.directory)
        self.assertEqual(str(error), f"{self.directory}: cannot read the Corefile: Is a directory")
