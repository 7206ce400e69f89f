# -*- test-case-name: tests.test_corefile -*-
"""
The Corefile syntax, as CoreDNS reads it (coredns/caddy's caddyfile package
and CoreDNS's server-block keys): text in, server blocks of directives out.

Pure: no sockets, no reactor.  Reading files happens only for C{import} and
L{load_corefile}.  Which directives exist and what their arguments mean is
for the plugins to check; here a directive is a name, arguments and a block.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, replace
from typing import Mapping

from kubernetai.zones import ZoneAddress, parse_key

_BRACES = ("{", "}")
_GLOB_CHARACTERS = frozenset("*?[")
# coredns/caddy caps snippet expansions the same way; this stops an
# exponential fan-out of imports, cycles are caught before it.
_MAX_IMPORTS = 10000

_LEXEME = re.compile(
    r"""
      (?P<newline>\n)
    | (?P<space>[^\S\n]+)
    | (?P<comment>\#[^\n]*)
    | (?P<quoted>"(?:[^"\\]|\\.)*")
    | (?P<unterminated>")
    | (?P<word>[^\s\#"][^\s\#]*)
    """,
    re.VERBOSE | re.DOTALL,
)
_QUOTE_ESCAPE = re.compile(r'\\(.)', re.DOTALL)
_ENV_REFERENCE = re.compile(r"\{\$([^}]+)\}|\{%(.+?)%\}")


@dataclass(frozen=True)
class Directive:
    """One line of a block: a name, its arguments, and the lines of its own block."""

    name: str
    args: tuple[str, ...]
    block: tuple[Directive, ...]
    file: str
    line: int


@dataclass(frozen=True)
class ServerBlock:
    """A server block: its keys, the zones they stand for, and its directives."""

    keys: tuple[str, ...]
    addresses: tuple[ZoneAddress, ...]
    directives: tuple[Directive, ...]
    file: str
    line: int


class CorefileError(Exception):
    """A mistake in a Corefile, at C{file}:C{line}; line 0 is the file as a whole."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")
        self.file = file
        self.line = line
        self.message = message


@dataclass(frozen=True)
class _Token:
    text: str
    file: str
    line: int
    starts_line: bool
    # The files and snippets this token was imported through, outermost first.
    chain: tuple[str, ...]


def parse_corefile(
    text: str,
    filename: str,
    *,
    environ: Mapping[str, str] | None = None,
    default_port: int = 53,
) -> list[ServerBlock]:
    """Parse Corefile C{text}; relative imports are found beside C{filename}.

    Raises L{CorefileError} naming the file and line of the first mistake.
    """
    return _parser(text, filename, environ, default_port).parse()


def parse_directives(text: str, filename: str, *, environ: Mapping[str, str] | None = None) -> tuple[Directive, ...]:
    """Parse C{text} as the inside of one server block: its directives, lines as in C{text}.

    Raises L{CorefileError} naming the file and line of the first mistake.
    """
    return _parser(text, filename, environ, 53).directives()


def _parser(text: str, filename: str, environ: Mapping[str, str] | None, default_port: int) -> _Parser:
    origin = os.path.realpath(filename)
    tokens = _tokenize(text, filename, (origin,))
    return _Parser(tokens, os.environ if environ is None else environ, default_port)


def load_corefile(
    path: str, *, environ: Mapping[str, str] | None = None, default_port: int = 53
) -> list[ServerBlock]:
    """Read and parse the Corefile at C{path}; an unreadable file is a L{CorefileError} at line 0."""
    try:
        text = _read_text(path)
    except FileNotFoundError:
        raise CorefileError(
            path, 0, "no such Corefile: name the one to load with -c/--conf FILE (the default is ./Corefile)"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise CorefileError(path, 0, f"cannot read the Corefile: {_reason(e)}") from None
    return parse_corefile(text, path, environ=environ, default_port=default_port)


def _tokenize(text: str, filename: str, chain: tuple[str, ...]) -> list[_Token]:
    """Split Corefile text into tokens, each knowing its line and whether it starts one."""
    tokens = []
    line = 1
    starts_line = True
    for lexeme in _LEXEME.finditer(text.removeprefix("\ufeff")):
        kind = lexeme.lastgroup
        if kind == "newline":
            line += 1
            starts_line = True
        elif kind == "unterminated":
            raise CorefileError(filename, line, "unterminated quoted string: expected a closing '\"'")
        elif kind in ("quoted", "word"):
            for value in _token_texts(lexeme):
                tokens.append(_Token(value, filename, line, starts_line, chain))
                starts_line = False
            line += lexeme.group().count("\n")
    return tokens


def _token_texts(lexeme: re.Match) -> list[str]:
    """The tokens a quoted string or a word stands for."""
    if lexeme.lastgroup == "quoted":
        return [_QUOTE_ESCAPE.sub(_unescape, lexeme.group()[1:-1])]
    # Caddy reads "{}" as one word; an empty block is what people mean by it.
    return ["{", "}"] if lexeme.group() == "{}" else [lexeme.group()]


def _unescape(escape: re.Match) -> str:
    # Inside quotes only \" is an escape; any other backslash stays as written.
    return escape.group(1) if escape.group(1) == '"' else escape.group()


class _Parser:
    """Turns a token list into server blocks, expanding imports as it meets them."""

    def __init__(self, tokens: list[_Token], environ: Mapping[str, str], default_port: int) -> None:
        self._pending = list(reversed(tokens))
        self._environ = environ
        self._default_port = default_port
        self._snippets: dict[str, tuple[_Token, list[_Token]]] = {}
        self._served: dict[tuple[str, int], _Token] = {}
        self._imports = 0

    def parse(self) -> list[ServerBlock]:
        """Every server block of the input, in order; snippets are remembered, not returned."""
        blocks = []
        while (token := self._peek()) is not None:
            if token.text == "import":
                self._import(self._next())
                continue
            keys = self._keys()
            name = _snippet_name(keys)
            if name is None:
                blocks.append(self._server_block(keys))
            else:
                self._define_snippet(name, keys[0][1])
        return blocks

    def directives(self) -> tuple[Directive, ...]:
        """Every directive of the input, as the body of a lone server block."""
        return self._directives(None)

    def _peek(self) -> _Token | None:
        return self._pending[-1] if self._pending else None

    def _next(self) -> _Token:
        return self._pending.pop()

    def _on_same_line(self) -> bool:
        """Whether a next token exists and continues the current line."""
        return bool(self._pending) and not self._pending[-1].starts_line

    def _expand(self, text: str) -> str:
        """C{text} with C{{$NAME}} and C{{%NAME%}} replaced by the environment (unset: empty)."""
        return _ENV_REFERENCE.sub(self._environment_value, text)

    def _environment_value(self, reference: re.Match) -> str:
        return self._environ.get(reference.group(1) or reference.group(2), "")

    def _keys(self) -> list[tuple[str, _Token]]:
        """The keys before a server block's C{{}}: one line, or more while lines end with a comma."""
        keys = []
        last = self._peek()
        continued = True
        while (token := self._peek()) is not None and token.text not in _BRACES:
            if not continued and token.starts_line:
                break
            last = self._next()
            text = self._expand(token.text)
            keys += [(key, token) for key in text.split(",") if key]
            continued = text.endswith(",")
        if last.text == "}":
            raise _unexpected_close(last)
        if not keys:
            raise _error(last, "server block without keys: expected keys such as '.:53' before '{'")
        if continued:
            raise _error(last, "expected another key after the trailing ','")
        return keys

    def _server_block(self, keys: list[tuple[str, _Token]]) -> ServerBlock:
        """The block after C{keys}: braced, or (for a lone block) the rest of the file."""
        addresses = [
            (address, token) for key, token in keys for address in self._addresses(key, token)
        ]
        opener = self._peek()
        if opener is not None and opener.text == "{":
            directives = self._directives(self._next())
        else:
            directives = self._directives(None)
        if not any(directive.name in ("bind", "view") for directive in directives):
            self._check_unserved(addresses)
        first = keys[0][1]
        return ServerBlock(
            keys=tuple(key for key, _ in keys),
            addresses=tuple(address for address, _ in addresses),
            directives=directives,
            file=first.file,
            line=first.line,
        )

    def _addresses(self, key: str, token: _Token) -> tuple[ZoneAddress, ...]:
        try:
            return parse_key(key, self._default_port)
        except ValueError as e:
            raise _error(token, str(e)) from None

    def _check_unserved(self, addresses: list[tuple[ZoneAddress, _Token]]) -> None:
        """Refuse a zone and port that an earlier key already serves on every address.

        Blocks with C{bind} are left to the listeners, which know their addresses; blocks with
        C{view} may share a zone and port with any number of others (CoreDNS's rule).
        """
        for address, token in addresses:
            earlier = self._served.setdefault((address.zone, address.port), token)
            if earlier is not token:
                raise _error(
                    token,
                    f"cannot serve {address} - zone already defined at {earlier.file}:{earlier.line}",
                )

    def _directives(self, opener: _Token | None) -> tuple[Directive, ...]:
        """Directive lines up to the C{}} closing C{opener} (C{None}: up to the end of input)."""
        directives = []
        while self._pending:
            token = self._next()
            if token.text == "}":
                if opener is None:
                    raise _unexpected_close(token)
                return tuple(directives)
            if token.text == "{":
                raise _error(token, "unexpected '{': a block opens at the end of its directive's line")
            if token.text == "import":
                self._import(token)
            else:
                directives.append(self._directive(token))
        if opener is not None:
            raise _error(opener, "this '{' is never closed: expected '}' before the end of the file")
        return tuple(directives)

    def _directive(self, name: _Token) -> Directive:
        """The directive starting at C{name}: its arguments to the end of the line, then any block."""
        args = []
        while self._on_same_line() and self._peek().text not in _BRACES:
            args.append(self._expand(self._next().text))
        block: tuple[Directive, ...] = ()
        if self._on_same_line() and self._peek().text == "{":
            block = self._directives(self._next())
            if self._on_same_line() and self._peek().text != "}":
                following = self._peek()
                raise _error(
                    following, f"unexpected {following.text!r} after '}}': expected the end of the line"
                )
        return Directive(self._expand(name.text), tuple(args), block, name.file, name.line)

    def _define_snippet(self, name: str, key: _Token) -> None:
        """Remember the tokens of C{(name) { ... }} for later imports."""
        if name in self._snippets:
            earlier = self._snippets[name][0]
            raise _error(key, f"snippet ({name}) is already defined at {earlier.file}:{earlier.line}")
        opener = self._peek()
        if opener is None or opener.text != "{":
            raise _error(key, f"snippet ({name}) needs a block: expected '{{' after it")
        self._snippets[name] = (key, self._raw_block(self._next()))

    def _raw_block(self, opener: _Token) -> list[_Token]:
        """The tokens up to the C{}} matching C{opener}, unparsed."""
        tokens = []
        depth = 1
        while self._pending:
            token = self._next()
            depth += {"{": 1, "}": -1}.get(token.text, 0)
            if depth == 0:
                return tokens
            tokens.append(token)
        raise _error(opener, "this '{' is never closed: expected '}' before the end of the file")

    def _import(self, token: _Token) -> None:
        """Replace C{import PATTERN} with the tokens of a snippet or of the matching files."""
        pattern = self._import_pattern(token)
        if pattern in self._snippets:
            pasted = _pasted(self._snippets[pattern][1], _import_chain(token, f"({pattern})"))
        else:
            pasted = []
            for path in _import_paths(token, pattern):
                chain = _import_chain(token, os.path.realpath(path))
                pasted += _pasted(_file_tokens(token, path), chain)
        self._imports += 1
        if self._imports > _MAX_IMPORTS:
            raise _error(token, f"more than {_MAX_IMPORTS} imports: expected fewer nested imports")
        self._pending += reversed(pasted)

    def _import_pattern(self, token: _Token) -> str:
        line = self._directive(token)
        if len(line.args) != 1 or line.block or not line.args[0]:
            raise _error(
                token, "import takes one argument: expected a snippet name, a file or a glob pattern"
            )
        return line.args[0]


def _snippet_name(keys: list[tuple[str, _Token]]) -> str | None:
    if len(keys) == 1 and keys[0][0].startswith("(") and keys[0][0].endswith(")"):
        return keys[0][0][1:-1]
    return None


def _import_paths(token: _Token, pattern: str) -> list[str]:
    """The files C{import PATTERN} names, relative to the importing token's file."""
    directory = os.path.dirname(os.path.abspath(token.file))
    if "\0" in pattern:
        raise _error(token, f"import {pattern!r}: a path cannot hold a NUL character")
    if _GLOB_CHARACTERS.intersection(pattern):
        return sorted(glob.glob(os.path.join(glob.escape(directory), pattern), include_hidden=True))
    path = os.path.join(directory, pattern)
    if not os.path.exists(path):
        raise _error(
            token,
            f"import {pattern}: no snippet ({pattern}) is defined above and no file {path} exists",
        )
    return [path]


def _import_chain(token: _Token, origin: str) -> tuple[str, ...]:
    """The import chain of tokens C{token} imports from C{origin}; a cycle is an error."""
    chain = token.chain + (origin,)
    if origin in token.chain:
        raise _error(token, "import cycle: " + " -> ".join(chain))
    return chain


def _file_tokens(token: _Token, path: str) -> list[_Token]:
    try:
        text = _read_text(path)
    except (OSError, UnicodeDecodeError) as e:
        raise _error(token, f"cannot import {path}: {_reason(e)}") from None
    return _tokenize(text, path, ())


def _pasted(tokens: list[_Token], chain: tuple[str, ...]) -> list[_Token]:
    """C{tokens} as imported through C{chain}; the first starts a line, as the import did."""
    return [
        replace(token, chain=chain, starts_line=token.starts_line or index == 0)
        for index, token in enumerate(tokens)
    ]


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _reason(error: Exception) -> str:
    return error.strerror if isinstance(error, OSError) and error.strerror else str(error)


def _error(token: _Token, message: str) -> CorefileError:
    return CorefileError(token.file, token.line, message)


def _unexpected_close(token: _Token) -> CorefileError:
    return _error(token, "unexpected '}': no block is open here")
