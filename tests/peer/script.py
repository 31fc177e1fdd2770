"""The script subset the peer understands in FullLanguage configurations (an emulation).

Supported: statements separated by ``;`` or new lines, pipelines with ``|``, command names
with ``-Name value``, ``-Name:value`` and switch parameters, positional arguments, literal
values (quoted strings without expansion, integers, decimals, ``$true``/``$false``/``$null``,
bare words, comma lists), ``#`` comments, and assignments to the preference variables
(``$VerbosePreference = 'Continue'``), ``exit N`` (the host's SetShouldExit(N), then the
script ends), and the expression ``$ExecutionContext.SessionState.LanguageMode`` (what clients
run to learn the language mode). Anything else is a parse error.
"""

import re
import typing

from psrpcore.types import PSInt64

PREFERENCE_VARIABLES = {
    "verbosepreference": "VerbosePreference",
    "debugpreference": "DebugPreference",
    "warningpreference": "WarningPreference",
    "informationpreference": "InformationPreference",
    "erroractionpreference": "ErrorActionPreference",
    "progresspreference": "ProgressPreference",
}


class ScriptError(Exception):
    """The text is outside the emulated subset."""


class ParamToken(typing.NamedTuple):
    name: str
    value: typing.Any  # NO_VALUE unless written -Name:value
    has_value: bool


class CommandCall(typing.NamedTuple):
    name: str
    tokens: typing.List[typing.Any]  # ParamToken or literal values


class Statement(typing.NamedTuple):
    line: int  # 1-based line of the statement start
    text: str
    pipeline: typing.List[CommandCall]  # empty for assignments and expressions
    assign: typing.Optional[typing.Tuple[str, typing.Any]]
    expression: typing.Optional[str] = None  # "languagemode"


LANGUAGE_MODE_EXPRESSION = "$executioncontext.sessionstate.languagemode"


_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_BAREWORD_END = set(" \t\r\n;|,)")


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def line_of(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_blanks(self, newlines: bool = False) -> None:
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c in " \t\r" or (newlines and c == "\n"):
                self.pos += 1
            elif c == "`" and self.text[self.pos + 1 : self.pos + 2] == "\n":
                self.pos += 2  # line continuation
            elif c == "#":
                while self.pos < len(self.text) and self.text[self.pos] != "\n":
                    self.pos += 1
            else:
                break

    def quoted(self) -> str:
        quote = self.text[self.pos]
        self.pos += 1
        out = []
        while True:
            if self.pos >= len(self.text):
                raise ScriptError("The string is missing the terminator: " + quote + ".")
            c = self.text[self.pos]
            if c == quote:
                if self.text[self.pos + 1 : self.pos + 2] == quote:
                    out.append(quote)
                    self.pos += 2
                    continue
                self.pos += 1
                return "".join(out)
            if quote == '"' and c == "$":
                raise ScriptError("Variable expansion in strings is not supported by the peer's script emulation.")
            if quote == '"' and c == "`" and self.pos + 1 < len(self.text):
                nxt = self.text[self.pos + 1]
                out.append({"n": "\n", "r": "\r", "t": "\t", "0": "\0"}.get(nxt, nxt))
                self.pos += 2
                continue
            out.append(c)
            self.pos += 1

    def word(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in _BAREWORD_END:
            if self.text[self.pos] in "(){}@$'\"":
                raise ScriptError(f"Unsupported syntax {self.text[self.pos]!r} in the peer's script emulation.")
            self.pos += 1
        return self.text[start : self.pos]

    def value(self) -> typing.Any:
        """One literal, or a comma list of literals."""
        items = [self._single()]
        while True:
            save = self.pos
            self.skip_blanks()
            if self.peek() == ",":
                self.pos += 1
                self.skip_blanks()
                items.append(self._single())
            else:
                self.pos = save
                break
        return items if len(items) > 1 else items[0]

    def _single(self) -> typing.Any:
        c = self.peek()
        if c in ("'", '"'):
            return self.quoted()
        if c == "$":
            self.pos += 1
            name = self.word().lower()
            if name in ("true", "false", "null"):
                return {"true": True, "false": False, "null": None}[name]
            raise ScriptError(f"Variables (${name}) are not supported by the peer's script emulation.")
        if c == "" or c in ";|\n":
            raise ScriptError("Missing value.")
        text = self.word()
        if _NUMBER.match(text):
            if "." in text:
                return float(text)
            n = int(text)
            # PowerShell types an integer literal as Int32, or Int64 when it does not fit.
            return n if -(2**31) <= n < 2**31 else PSInt64(n)
        return text


def parse(text: str) -> typing.List[Statement]:
    lx = _Lexer(text)
    statements: typing.List[Statement] = []
    while True:
        lx.skip_blanks(newlines=True)
        while lx.peek() == ";":
            lx.pos += 1
            lx.skip_blanks(newlines=True)
        if lx.pos >= len(text):
            return statements
        start = lx.pos
        line = lx.line_of(start)
        if lx.peek() == "$":
            end = start + len(LANGUAGE_MODE_EXPRESSION)
            ends = ("", ";", "\n", " ", "\r")
            if text[start:end].lower() == LANGUAGE_MODE_EXPRESSION and text[end : end + 1] in ends:
                lx.pos = end
                statements.append(Statement(line, text[start:end], [], None, "languagemode"))
                continue
            statements.append(_assignment(lx, start, line))
            continue
        pipeline = []
        while True:
            pipeline.append(_command(lx))
            lx.skip_blanks()
            if lx.peek() == "|":
                lx.pos += 1
                lx.skip_blanks(newlines=True)
                continue
            break
        if lx.peek() not in ("", ";", "\n"):
            raise ScriptError(f"Unexpected token {lx.peek()!r} at line {lx.line_of(lx.pos)}.")
        statements.append(Statement(line, text[start : lx.pos].strip(), pipeline, None))


def _assignment(lx: _Lexer, start: int, line: int) -> Statement:
    lx.pos += 1
    name = lx.word()
    canonical = PREFERENCE_VARIABLES.get(name.lower())
    if canonical is None:
        raise ScriptError(f"Only preference variables can be assigned in the peer's script emulation, not ${name}.")
    lx.skip_blanks()
    if lx.peek() != "=":
        raise ScriptError(f"Expected '=' after ${name}.")
    lx.pos += 1
    lx.skip_blanks()
    value = lx.value()
    lx.skip_blanks()
    if lx.peek() not in ("", ";", "\n"):
        raise ScriptError(f"Unexpected token {lx.peek()!r} at line {lx.line_of(lx.pos)}.")
    return Statement(line, lx.text[start : lx.pos].strip(), [], (canonical, value))


def _command(lx: _Lexer) -> CommandCall:
    lx.skip_blanks()
    c = lx.peek()
    if c in ("'", '"'):
        raise ScriptError("Invoking a quoted command name (&'...') is not supported by the peer's script emulation.")
    name = lx.word()
    if not name:
        raise ScriptError(f"Expected a command name at line {lx.line_of(lx.pos)}.")
    tokens: typing.List[typing.Any] = []
    while True:
        lx.skip_blanks()
        c = lx.peek()
        if c in ("", ";", "|", "\n"):
            return CommandCall(name, tokens)
        if c == "-" and lx.pos + 1 < len(lx.text) and (lx.text[lx.pos + 1].isalpha() or lx.text[lx.pos + 1] == "_"):
            lx.pos += 1
            start = lx.pos
            while lx.pos < len(lx.text) and (lx.text[lx.pos].isalnum() or lx.text[lx.pos] == "_"):
                lx.pos += 1
            pname = lx.text[start : lx.pos]
            if lx.peek() == ":":
                lx.pos += 1
                tokens.append(ParamToken(pname, lx.value(), True))
            else:
                tokens.append(ParamToken(pname, None, False))
        else:
            tokens.append(lx.value())


def bind_tokens(
    tokens: typing.List[typing.Any], is_switch: typing.Callable[[str], bool]
) -> typing.List[typing.Tuple[typing.Optional[str], typing.Any]]:
    """Turns tokens into (name, value) pairs the way psrpcore presents API parameters.

    A ``-Name`` token takes the next value unless the command declares Name as a switch
    (or nothing follows); a switch binds as True, as PowerShell's own client sends it.
    """
    params: typing.List[typing.Tuple[typing.Optional[str], typing.Any]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if isinstance(tok, ParamToken):
            if tok.has_value:
                params.append((tok.name, tok.value))
            elif is_switch(tok.name) or i + 1 >= len(tokens) or isinstance(tokens[i + 1], ParamToken):
                params.append((tok.name, True))
            else:
                params.append((tok.name, tokens[i + 1]))
                i += 1
        else:
            params.append((None, tok))
        i += 1
    return params
