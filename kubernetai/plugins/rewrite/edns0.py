# -*- test-case-name: tests.test_rewrite_rules -*-
"""
The C{edns0} rules (CoreDNS's edns0.go, wire.go): C{edns0 local
set|replace|append CODE DATA [revert]}, C{edns0 local unset CODE},
C{edns0 nsid set|replace|append [revert]}, C{edns0 nsid unset},
C{edns0 subnet set|replace|append V4BITS V6BITS [revert]} and C{edns0 subnet
unset}: an option of the query's OPT record set, replaced, appended or
removed (an OPT record of 4096 octets is added to a query without one)
before the rest of the chain sees it, and so what C{forward} sends on.

DATA is text, hex after C{0x}, or a variable: C{{qname}}, C{{qtype}},
C{{client_ip}}, C{{client_port}}, C{{protocol}}, C{{server_ip}},
C{{server_port}}, or a metadata label C{{plugin/label}} (never set in
kubernetai, which has no metadata plugin: such a rule does not match).

The reply carries the options of the rewritten query whose codes the rules
name (NSID for C{nsid} rules), as CoreDNS reflects the options it supports
into a reply without an OPT record of its own; with C{revert}, as they were
before the rule.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass
from typing import Any, Callable

from kubernetai.plugins.rewrite.rules import Question

NSID = 3
SUBNET = 8
ACTIONS = ("append", "replace", "set", "unset")
# The option codes miekg/dns reads into types of their own: a local rule never finds them as local options.
TYPED_OPTIONS = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 18, 19})
VARIABLES = ("{qname}", "{qtype}", "{client_ip}", "{client_port}", "{protocol}", "{server_ip}", "{server_port}")


@dataclass(frozen=True)
class OptionRevert:
    """Put an option back as it was before a rule: C{old} (code, data) in place of the first one with
    C{code}, or that one removed when C{old} is None (CoreDNS's edns0 revert rules)."""

    code: int
    old: tuple[int, bytes] | None

    def revert(self, options: list[tuple[int, bytes]]) -> None:
        for index, (code, _) in enumerate(options):
            if code == self.code:
                if self.old is None:
                    del options[index]
                else:
                    options[index] = self.old
                return


def _set_option(question: Question, code: int, data: bytes, action: str, revert: bool, append_when_found: bool,
                findable: bool = True) -> list[Any] | None:
    """Set, replace or append the option C{code} as CoreDNS's local and nsid rules do; the response rules.
    An option that is not C{findable} (a local rule's code miekg/dns types) is always appended."""
    options = question.opt()
    for index, option in enumerate(options):
        if option[0] != code or not findable:
            continue
        if action in ("replace", "set"):
            options[index] = (code, data)
            return [OptionRevert(code, option)] if revert else []
        if not append_when_found:
            return None
    if action in ("append", "set"):
        options.append((code, data))
        return [OptionRevert(code, None)] if revert else []
    return None


def _unset(question: Question, code: int) -> list[Any]:
    question.options = [option for option in question.opt() if option[0] != code]
    return []


def local_rule(action: str, code: int, data: bytes, revert: bool) -> Callable[[Question], list[Any] | None]:
    if action == "unset":
        return lambda question: _unset(question, code)
    return lambda question: _set_option(question, code, data, action, revert, True, code not in TYPED_OPTIONS)


def variable_rule(action: str, code: int, variable: str, revert: bool) -> Callable[[Question], list[Any] | None]:
    """A local rule whose data is read from the query; it does not match when there is none."""

    def apply(question: Question) -> list[Any] | None:
        data = variable_data(variable, question)
        if data is None:
            return None
        return _set_option(question, code, data, action, revert, False, code not in TYPED_OPTIONS)

    return apply


def nsid_rule(action: str, revert: bool) -> Callable[[Question], list[Any] | None]:
    if action == "unset":
        return lambda question: _unset(question, NSID)
    return lambda question: _set_option(question, NSID, b"", action, revert, True)


def subnet_rule(action: str, v4_bits: int, v6_bits: int, revert: bool) -> Callable[[Question], list[Any] | None]:
    """The client's subnet (ECS, RFC 7871) from its address, cut to C{v4_bits} or C{v6_bits}."""

    def apply(question: Question) -> list[Any] | None:
        if action == "unset":
            return _unset(question, SUBNET)
        data = subnet_data(question, v4_bits, v6_bits)
        options = question.opt()
        for index, option in enumerate(options):
            if option[0] == SUBNET:
                if action in ("replace", "set") and data is not None:
                    options[index] = (SUBNET, data)
                    return [OptionRevert(SUBNET, option)] if revert else []
                return None
        if action in ("append", "set") and data is not None:
            options.append((SUBNET, data))
            return [OptionRevert(SUBNET, None)] if revert else []
        return None

    return apply


def subnet_data(question: Question, v4_bits: int, v6_bits: int) -> bytes | None:
    """The ECS option's data for the client's address: family, source prefix, scope 0, the prefix's octets."""
    if question.request is None:
        return None
    address = ipaddress.ip_address(question.request.client[0].split("%")[0])
    family, bits = (1, v4_bits) if address.version == 4 else (2, v6_bits)
    network = ipaddress.ip_network(f"{address}/{bits}", strict=False)
    return struct.pack("!HBB", family, bits, 0) + network.network_address.packed[: (bits + 7) // 8]


def variable_data(variable: str, question: Question) -> bytes | None:
    """What C{variable} stands for in this query, on the wire as CoreDNS writes it; None when nothing."""
    request = question.request
    if variable == "{qname}":
        return question.name.encode("latin-1")
    if variable == "{qtype}":
        return struct.pack("!H", question.qtype)
    if request is None:
        return None
    if variable == "{protocol}":
        return request.protocol.encode()
    if variable in ("{client_port}", "{server_port}"):
        port = request.client[1] if variable == "{client_port}" else request.local[1] if request.local else 0
        return struct.pack("!H", port)
    if variable in ("{client_ip}", "{server_ip}"):
        host = request.client[0] if variable == "{client_ip}" else request.local[0] if request.local else ""
        return _ip_wire(ipaddress.ip_address(request.client[0]).version, host)
    return None


def _ip_wire(family: int, host: str) -> bytes | None:
    """Go's C{net.ParseIP(host).To4()} for an IPv4 client, C{.To16()} for an IPv6 one; None for nil."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if family == 4:
        if address.version == 4:
            return address.packed
        mapped = address.ipv4_mapped
        return mapped.packed if mapped is not None else None
    if address.version == 4:
        return ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + address.packed).packed
    return address.packed


def go_uint(text: str, bits: int) -> int:
    """Go's C{strconv.ParseUint(text, 0, bits)}: decimal, 0x hex, 0o or 0 octal, 0b binary; its errors."""
    body = text.replace("_", "") if re.fullmatch(r"(0[xXoObB]_?)?[0-9A-Fa-f]+(_[0-9A-Fa-f]+)*", text) else None
    value = None
    if body is not None:
        base, digits = 10, body
        if body[:2].lower() in ("0x", "0o", "0b"):
            base, digits = {"x": 16, "o": 8, "b": 2}[body[1].lower()], body[2:]
        elif body.startswith("0") and len(body) > 1:
            base, digits = 8, body[1:]
        try:
            value = int(digits, base)
        except ValueError:
            value = None
    if value is None:
        raise ValueError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    if value >= 2**bits:
        raise ValueError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


def _hex_data(data: str) -> bytes:
    """C{data} as the bytes of a local option: hex after C{0x}, else the text itself."""
    if not data.startswith("0x"):
        return data.encode("utf-8")
    digits = data[2:]
    bad = re.search(r"[^0-9A-Fa-f]", digits)
    if bad:
        raise ValueError(f"encoding/hex: invalid byte: U+{ord(bad.group()):04X} {bad.group()!r}")
    if len(digits) % 2:
        raise ValueError("encoding/hex: odd length hex string")
    return bytes.fromhex(digits)


def _is_variable(variable: str) -> bool:
    """A known variable or a metadata label's syntax, C{{plugin/label}}."""
    if variable in VARIABLES:
        return True
    label = variable[1:-1]
    slash = label.find("/")
    return slash > 0 and slash < len(label) - 1 and label.rfind("/") == slash


def edns0_rule(args: list[str]) -> tuple[Callable[[Question], list[Any] | None], set[int]]:
    """C{edns0 local|nsid|subnet ACTION ...} with CoreDNS's errors: the rule's C{apply}, and the option
    codes it names (which replies carry back)."""
    if len(args) < 2:
        raise ValueError("too few arguments for an EDNS0 rule")
    kind, action = args[0].lower(), args[1].lower()
    if action not in ACTIONS:
        raise ValueError(f'invalid action: "{args[1].lower()}"')
    if action == "unset":
        return _unset_rule(kind, args)
    revert = args[-1] == "revert"
    if revert:
        args = args[:-1]
    if kind == "local":
        if len(args) != 4:
            raise ValueError("EDNS0 local rules require three or four args")
        code = go_uint(args[2], 16)
        if args[3].startswith("{") and args[3].endswith("}"):
            if not _is_variable(args[3]):
                raise ValueError(f'unsupported variable name "{args[3]}"')
            return variable_rule(action, code, args[3], revert), {code}
        return local_rule(action, code, _hex_data(args[3]), revert), {code}
    if kind == "nsid":
        if len(args) != 2:
            raise ValueError("EDNS0 NSID rules can accept no more than one arg")
        return nsid_rule(action, revert), {NSID}
    if kind == "subnet":
        if len(args) != 4:
            raise ValueError("EDNS0 subnet rules require three or four args")
        v4_bits, v6_bits = go_uint(args[2], 16), go_uint(args[3], 16)
        if v4_bits > 32:
            raise ValueError(f"invalid IPv4 bit mask length {v4_bits}")
        if v6_bits > 128:
            raise ValueError(f"invalid IPv6 bit mask length {v6_bits}")
        return subnet_rule(action, v4_bits, v6_bits, revert), set()
    raise ValueError(f'invalid rule type "{kind}"')


def _unset_rule(kind: str, args: list[str]) -> tuple[Callable[[Question], list[Any] | None], set[int]]:
    if kind == "local":
        if len(args) != 3:
            raise ValueError("local unset action requires exactly two arguments")
        code = go_uint(args[2], 16)
        return local_rule("unset", code, b"", False), {code}
    if kind == "nsid":
        if len(args) != 2:
            raise ValueError("nsid unset action requires exactly one argument")
        return nsid_rule("unset", False), {NSID}
    if kind == "subnet":
        if len(args) != 2:
            raise ValueError("subnet unset action requires exactly one argument")
        return subnet_rule("unset", 0, 0, False), set()
    raise ValueError(f'invalid rule type "{kind}"')
