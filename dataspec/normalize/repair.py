"""Repair of broken VLM JSON replies: a tolerant parser, run only after strict parsing failed.

It reads the defects models actually write (a reply cut off at the token limit, double
quotes left unescaped inside a string, code fences, markdown markers, invalid escapes,
missing or trailing commas, Python/JS literals, NaN/Infinity, a second value after the
first) and records one `Note` per kind of repair. Where the text does not say what was
meant, it raises `DataSpecError` rather than guess: a wrong repair is worse than a skip.

A `"` inside a string ends it only where the grammar goes on after it: `:` after a key;
`}`, or `,` then a next key or `}`, after a value in an object (or, a comma missing,
whitespace then a next key); `]`, or `,` then a value, in an array. Elsewhere it is text.
A string that could end at two places (an odd number of quotes inside, and a later end
that leaves an even number), one that would hold what reads as a key, and repeated keys
after such repairs are errors. A key never holds a quote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import DataSpecError, Note
from .vocab import PANEL_LIST_KEYS

REPAIRS: dict[str, str] = {
    "markdown_fence": "a ```json code fence around the reply skipped (closed or not)",
    "embedded_json": "prose before or after the JSON skipped",
    "markdown_marker": "markdown markers (*, **, #, >, - bullets, __) outside strings skipped",
    "unescaped_quote": "a double quote inside a string, not escaped, kept as text",
    "invalid_escape": "an invalid escape read: \\' as ', any other kept literally",
    "control_character": "a raw control character (newline, tab) inside a string kept",
    "missing_comma": "a missing comma between properties or array items inserted",
    "trailing_comma": "a comma before } or ] dropped",
    "python_literal": "Python None / True / False read as null / true / false",
    "js_undefined": "JavaScript undefined read as null",
    "non_standard_number": "NaN / Infinity / -Infinity read as floats",
    "extra_value": "a second JSON value after the first dropped",
    "truncated": "a reply cut short closed at the cut; the incomplete item dropped",
}
"""Every note code a repair can record → what it means."""

REPAIR_CODES: tuple[str, ...] = tuple(REPAIRS)
"""The note codes of `REPAIRS`, in the order notes are recorded."""

MAX_DEPTH = 512
"""Deepest nesting the repair reads; deeper text raises `DataSpecError`."""

_WS = " \t\r\n"
_MARKERS = "*_#>"
_VALUE_START = '"{[-0123456789tfnNTFIu'
_KEY_NAME = re.compile(r"[\w-]{1,64}")
_LOOKAHEAD = 2000
_KEY_INSIDE = re.compile(r'"[\w-]{1,64}"[ \t\r\n*_#>]*:')
_STRING_SPECIAL = re.compile(r'["\\\x00-\x1f]')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NUMBER_CHARS = re.compile(r"[-+0-9.eE]*")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_HEX_PREFIX = re.compile(r"[0-9a-fA-F]{0,3}")
_START = re.compile(r"[\[{]")
_FENCE_OPEN = re.compile(r"```[ \t]*(?:[A-Za-z0-9_+-]+[ \t]*)?(?:\r?\n)?\s*(?=[\[{])")
_PIECE = re.compile(r'[\]}]|"\s*:')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_WORDS: dict[str, tuple[Any, str | None]] = {
    "true": (True, None),
    "false": (False, None),
    "null": (None, None),
    "True": (True, "python_literal"),
    "False": (False, "python_literal"),
    "None": (None, "python_literal"),
    "undefined": (None, "js_undefined"),
    "NaN": (float("nan"), "non_standard_number"),
    "Infinity": (float("inf"), "non_standard_number"),
}

# what the parser expects next
_VALUE, _FIRST_VALUE, _NEXT_VALUE, _FIRST_KEY, _NEXT_KEY, _COLON, _AFTER = range(7)
# where a string stands (decides which quote closes it)
_KEY, _IN_OBJECT, _IN_ARRAY = range(3)


def repair_json(text: str, notes: list[Note], *, require_panels: bool = False) -> Any:
    """Parse JSON text that strict parsing rejected, repairing the defects models write.

    Returns the value and appends one note per kind of repair used (`REPAIR_CODES`).
    A reply cut short keeps what closed before the cut: the root's complete pairs and the
    complete items of its panel list (a key of `PANEL_LIST_KEYS`), never a half item.
    With `require_panels`, a reply cut before any panel list began is an error.
    Raises `DataSpecError` (only) when the text cannot be read even so.
    """
    try:
        parser = _Parser(text)
        value = parser.parse()
        if require_panels and parser.cut is not None and not parser.panels_reached:
            raise DataSpecError("cut short before any panel list began")
    except DataSpecError:
        raise
    except Exception as exc:  # a defect no rule expected: a named failure, never a crash
        raise DataSpecError(f"unreadable even with repairs ({type(exc).__name__})") from None
    notes.extend(parser.notes())
    return value


class _Cut(Exception):
    """The text ends inside the value being read."""

    def __init__(self, in_token: bool) -> None:
        super().__init__("cut")
        self.in_token = in_token


@dataclass(slots=True)
class _Frame:
    container: dict[str, Any] | list[Any]
    keeper: bool
    """On a cut, this container is kept, its incomplete child dropped."""
    in_panels: bool
    """This container is, or lies inside, the panel list."""
    key: str | None = None
    """The key whose value is being read (objects)."""


class _Parser:
    """One pass over the text with an explicit stack (no recursion)."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.end = len(text)
        self.pos = 0
        self.stack: list[_Frame] = []
        self.counts: dict[str, int] = {}
        self.literals: set[str] = set()
        self.closed_fence = False
        self.panel_list: dict[str, Any] | list[Any] | None = None
        self.panels_reached = False
        self.cut: str | None = None
        self.duplicates = 0
        self.key_follows = False

    # --- the document ------------------------------------------------------------------

    def parse(self) -> Any:
        self._start()
        try:
            value = self._value_tree()
        except _Cut as cut:
            value = self._close_at_cut(cut.in_token)
        else:
            self._after_root()
        if self.duplicates and self.counts.get("unescaped_quote"):
            raise DataSpecError(
                "ambiguous unescaped quotes: keys repeat in an object (a quote read wrong?)"
            )
        return value

    def _start(self) -> None:
        """Skip an opening fence line and any prose before the first `{` or `[`."""
        fence = _FENCE_OPEN.search(self.s)
        if fence is not None:  # prose around a fence is the fence's (as in `decode`)
            self._count("markdown_fence")
            self.pos = fence.end()
            return
        found = _START.search(self.s)
        if found is None:
            raise DataSpecError("no JSON object or array in the text")
        prose = self.s[: found.start()]
        if _PIECE.search(prose):
            raise DataSpecError("text before the first '{' or '[' looks like a piece of JSON")
        if prose.strip():
            self._count("embedded_json")
        self.pos = found.start()

    def _after_root(self) -> None:
        s, p = self.s, self._skip_ws(self.pos)
        if p >= self.end:
            return
        if s.startswith("```", p):
            self.closed_fence = True
            return
        c = s[p]
        if c == ",":
            q = self._skip_ws(p + 1)
            if q < self.end and s[q] in "{[":
                c = s[q]
        if c in "{[":
            self._count("extra_value")
        elif c in '}]":,':
            raise DataSpecError(f"unexpected {c!r} after the JSON value (unbalanced brackets?)")
        elif "markdown_fence" not in self.counts:
            self._count("embedded_json")

    def notes(self) -> list[Note]:
        """One note per kind of repair used, in `REPAIR_CODES` order."""
        out = []
        for code in REPAIR_CODES:
            n = self.counts.get(code, 0)
            if code == "truncated" and self.cut is not None:
                out.append(Note(code, self.cut))
            elif n:
                out.append(Note(code, self._message(code, n)))
        return out

    def _message(self, code: str, n: int) -> str:
        if code == "markdown_fence":
            closed = "" if self.closed_fence else " (no closing fence)"
            return f"JSON taken from a markdown code fence{closed}"
        if code == "embedded_json":
            return "JSON taken from surrounding prose"
        if code == "non_standard_number":
            return f"JSON literals {sorted(self.literals)} read"
        if code == "extra_value":
            return "a second JSON value after the first dropped"
        what = {
            "markdown_marker": "markdown marker(s) outside strings skipped",
            "unescaped_quote": "unescaped double quote(s) inside strings kept as text",
            "invalid_escape": "invalid escape(s) read (\\' as ', others kept literally)",
            "control_character": "raw control character(s) inside strings kept",
            "missing_comma": "missing comma(s) inserted",
            "trailing_comma": "trailing comma(s) dropped",
            "python_literal": "Python literal(s) None/True/False read as null/true/false",
            "js_undefined": "undefined read as null",
        }[code]
        return f"{n} {what}"

    def _count(self, code: str, n: int = 1) -> None:
        self.counts[code] = self.counts.get(code, 0) + n

    # --- the value tree ----------------------------------------------------------------

    def _value_tree(self) -> Any:
        """Read the first complete value (the root); raises `_Cut` at the end of the text."""
        state = _VALUE
        while True:
            c = self._next()
            if c in _MARKERS or (c == "-" and self._bullet(self.pos)):
                self.pos = self._skip_markers(self.pos)
                self._count("markdown_marker")
                continue
            top = self.stack[-1] if self.stack else None
            if state in (_VALUE, _FIRST_VALUE, _NEXT_VALUE):
                if c == "]" and state != _VALUE:
                    if state == _NEXT_VALUE:
                        self._count("trailing_comma")
                    self.pos += 1
                    done, value = self._close()
                elif c == "{":
                    self._push({})
                    state = _FIRST_KEY
                    continue
                elif c == "[":
                    self._push([])
                    state = _FIRST_VALUE
                    continue
                else:
                    in_array = top is None or isinstance(top.container, list)
                    done, value = self._emit(self._scalar(c, _IN_ARRAY if in_array else _IN_OBJECT))
            elif state in (_FIRST_KEY, _NEXT_KEY):
                assert top is not None
                if c == "}":
                    if state == _NEXT_KEY:
                        self._count("trailing_comma")
                    self.pos += 1
                    done, value = self._close()
                elif c == '"':
                    top.key = self._string(_KEY)
                    state = _COLON
                    continue
                else:
                    raise self._error(f"expected a key, found {c!r}")
            elif state == _COLON:
                if c != ":":
                    raise self._error(f"expected ':' after a key, found {c!r}")
                self.pos += 1
                state = _VALUE
                continue
            else:  # _AFTER: a value was read inside `top`
                assert top is not None
                is_dict = isinstance(top.container, dict)
                if c == ",":
                    self.pos += 1
                    state = _NEXT_KEY if is_dict else _NEXT_VALUE
                    continue
                if c == ("}" if is_dict else "]"):
                    self.pos += 1
                    done, value = self._close()
                elif is_dict and c == '"':
                    self._count("missing_comma")
                    state = _NEXT_KEY
                    continue
                elif not is_dict and c in _VALUE_START:
                    self._count("missing_comma")
                    state = _VALUE
                    continue
                else:
                    raise self._error(f"expected ',' or a closing bracket, found {c!r}")
            if done:
                return value
            state = _AFTER

    def _push(self, container: dict[str, Any] | list[Any]) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise DataSpecError(f"nested more than {MAX_DEPTH} levels deep")
        self.pos += 1
        if not self.stack:
            frame = _Frame(container, keeper=True, in_panels=False)
            if isinstance(container, list):  # a bare list of panels (or of pages)
                self.panel_list = container
                self.panels_reached = True
        else:
            parent = self.stack[-1]
            is_panels = (
                isinstance(parent.container, dict)
                and parent.key in PANEL_LIST_KEYS
                and not parent.in_panels
            )
            frame = _Frame(container, keeper=is_panels, in_panels=parent.in_panels or is_panels)
            if is_panels:
                self.panel_list = container
                self.panels_reached = True
        self.stack.append(frame)

    def _close(self) -> tuple[bool, Any]:
        frame = self.stack.pop()
        if self.stack and frame.container is self.panel_list:
            self.stack[-1].keeper = True  # a later cut keeps the complete panel list
        return self._emit(frame.container)

    def _emit(self, value: Any) -> tuple[bool, Any]:
        """Give a complete value to its container; (True, value) when it is the root."""
        if not self.stack:
            return True, value
        top = self.stack[-1]
        if isinstance(top.container, dict):
            assert top.key is not None
            self.duplicates += top.key in top.container
            top.container[top.key] = value
            top.key = None
        else:
            top.container.append(value)
        return False, None

    def _close_at_cut(self, in_token: bool) -> Any:
        """The root as far as it goes: the nearest keeper drops its incomplete child."""
        stack = self.stack
        i = max(k for k, frame in enumerate(stack) if frame.keeper)
        keeper = stack[i]
        dropped = in_token or len(stack) - 1 > i or keeper.key is not None
        keeper.key = None
        value: Any = keeper.container
        for frame in reversed(stack[:i]):
            if isinstance(frame.container, dict):
                assert frame.key is not None
                frame.container[frame.key] = value
            else:
                frame.container.append(value)
            value = frame.container
        tail = ", the incomplete one dropped" if dropped else ""
        if self.panel_list is not None and self.panel_list is keeper.container:
            n = len(self.panel_list)
            self.cut = f"reply cut short: {n} complete panel item(s) kept{tail}"
        elif self.panel_list is not None:
            n = len(self.panel_list)
            self.cut = f"reply cut short after its panel list ({n} panel item(s) kept){tail}"
        else:
            self.cut = f"reply cut short before any panel list{tail}"
        return value

    # --- tokens ------------------------------------------------------------------------

    def _next(self) -> str:
        """The next character after whitespace; `_Cut` at the end or at a closing fence."""
        p = self._skip_ws(self.pos)
        self.pos = p
        if p >= self.end or self.s.startswith("```", p):
            if p < self.end:
                self.closed_fence = True
            raise _Cut(in_token=False)
        return self.s[p]

    def _skip_ws(self, p: int) -> int:
        s, end = self.s, self.end
        while p < end and s[p] in _WS:
            p += 1
        return p

    def _skip_ws_markers(self, p: int) -> int:
        s, end = self.s, self.end
        while p < end and (s[p] in _WS or s[p] in _MARKERS or (s[p] == "-" and self._bullet(p))):
            p += 1
        return p

    def _skip_markers(self, p: int) -> int:
        s, end = self.s, self.end
        while p < end and (s[p] in _MARKERS or (s[p] == "-" and self._bullet(p))):
            p += 1
        return p

    def _bullet(self, p: int) -> bool:
        """A `-` followed by whitespace: a markdown bullet, not a number."""
        return p + 1 < self.end and self.s[p + 1] in _WS

    def _error(self, message: str) -> DataSpecError:
        line = self.s.count("\n", 0, self.pos) + 1
        return DataSpecError(f"{message} (line {line}, character {self.pos + 1})")

    def _scalar(self, c: str, where: int) -> Any:
        if c == '"':
            return self._string(where)
        if c in "-0123456789":
            return self._number()
        if c.isascii() and c.isalpha():
            return self._word()
        raise self._error(f"expected a value, found {c!r}")

    def _number(self) -> Any:
        s, p = self.s, self.pos
        if s.startswith("-Infinity", p):
            self.pos = p + len("-Infinity")
            self._boundary()
            self.literals.add("-Infinity")
            self._count("non_standard_number")
            return float("-inf")
        if self.end - p < len("-Infinity") and "-Infinity".startswith(s[p : self.end]):
            raise _Cut(in_token=True)
        m = _NUMBER.match(s, p)
        k = m.end() if m is not None else p
        rest = _NUMBER_CHARS.match(s, k)
        if rest is not None and rest.end() >= self.end:
            raise _Cut(in_token=True)  # the number may go on past the cut
        if m is None or (k < self.end and (s[k].isalnum() or s[k] in "._+-")):
            raise self._error("malformed number")
        self.pos = k
        token = m.group()
        if any(ch in token for ch in ".eE"):
            return float(token)
        try:
            return int(token)
        except ValueError:  # more digits than Python converts
            raise self._error("integer with too many digits") from None

    def _word(self) -> Any:
        m = _WORD.match(self.s, self.pos)
        if m is None:
            raise self._error("expected a value")
        if m.end() >= self.end:
            raise _Cut(in_token=True)
        word = m.group()
        if word not in _WORDS:
            raise self._error(f"unknown word {word[:20]!r} where a value was expected")
        value, code = _WORDS[word]
        self.pos = m.end()
        if code is not None:
            self._count(code)
            if code == "non_standard_number":
                self.literals.add(word)
        return value

    def _boundary(self) -> None:
        if self.pos >= self.end:
            raise _Cut(in_token=True)
        if self.s[self.pos].isalnum():
            raise self._error("malformed number")

    def _string(self, where: int) -> str:
        """Read the string at `pos`; a `"` ends it only where the grammar goes on after it."""
        s, end = self.s, self.end
        parts: list[str] = []
        quotes = escapes = controls = 0
        raw_newline = undecided = False
        i = self.pos + 1
        while True:
            m = _STRING_SPECIAL.search(s, i)
            if m is None:
                if raw_newline and not undecided:  # runaway, unless the cut is what ends it
                    raise DataSpecError(
                        "a string runs across lines to the end of the text (a quote missing?)"
                    )
                raise _Cut(in_token=True)
            j = m.start()
            if j > i:
                parts.append(s[i:j])
            ch = s[j]
            if ch == '"':
                closes = self._closes(j + 1, where)
                undecided = undecided or closes is None
                if closes:
                    text = "".join(parts)
                    if quotes and where != _KEY and _KEY_INSIDE.search(text):
                        raise self._error(
                            "ambiguous unescaped quotes: a string would hold what reads as a key"
                        )
                    if quotes % 2 and self.key_follows and self._closes_later(j + 1, where):
                        raise self._error(
                            "ambiguous unescaped quotes: the string could end at two places"
                        )
                    self.pos = j + 1
                    for code, n in (
                        ("unescaped_quote", quotes),
                        ("invalid_escape", escapes),
                        ("control_character", controls),
                    ):
                        if n:
                            self._count(code, n)
                    return text
                if where == _KEY and closes is not None:  # no key holds a quote: not a guess
                    raise self._error("a key not followed by ':'")
                parts.append('"')
                quotes += 1
                i = j + 1
            elif ch == "\\":
                if j + 1 >= end:
                    raise _Cut(in_token=True)
                i, bad = self._escape(j, parts)
                escapes += bad
            else:
                parts.append(ch)
                controls += 1
                raw_newline = raw_newline or ch == "\n"
                i = j + 1

    def _escape(self, j: int, parts: list[str]) -> tuple[int, int]:
        """Decode the escape at `j` into `parts`: (next index, 1 if it was invalid)."""
        s = self.s
        e = s[j + 1]
        if e in _ESCAPES:
            parts.append(_ESCAPES[e])
            return j + 2, 0
        if e == "u":
            if _HEX4.fullmatch(s, j + 2, j + 6):
                code = int(s[j + 2 : j + 6], 16)
                if (
                    0xD800 <= code < 0xDC00
                    and s.startswith("\\u", j + 6)
                    and _HEX4.fullmatch(s, j + 8, j + 12)
                ):
                    low = int(s[j + 8 : j + 12], 16)
                    if 0xDC00 <= low < 0xE000:
                        parts.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                        return j + 12, 0
                parts.append(chr(code))  # a lone surrogate stays, as json gives it
                return j + 6, 0
            if j + 6 > self.end and _HEX_PREFIX.fullmatch(s, j + 2, self.end):
                raise _Cut(in_token=True)
        if e == "'":
            parts.append("'")
            return j + 2, 1
        parts.append("\\")  # kept literally, with what follows it
        return j + 1, 1

    def _closes_later(self, p: int, where: int) -> bool:
        """Whether a later `"` on the same line (from `p`, near) would end the string too,
        with an even number of quotes inside (as a quoted phrase has).

        Past a true end, every later end leaves the count's parity as it is (whole strings
        hold two quotes each); a change means the text itself is in doubt.
        """
        s = self.s
        stop = s.find("\n", p, p + _LOOKAHEAD)
        stop = min(self.end, p + _LOOKAHEAD) if stop < 0 else stop
        odd = False  # parity of the quotes between the first end and `q`
        q = s.find('"', p, stop)
        while q >= 0:
            k = q
            while k > p and s[k - 1] == "\\":
                k -= 1
            if (q - k) % 2 == 0:  # not escaped
                if not odd and self._closes(q + 1, where):
                    return True
                odd = not odd
            q = s.find('"', q + 1, stop)
        return False

    def _closes(self, p: int, where: int) -> bool | None:
        """Whether a `"` just before `p` ends the string (what follows fits the grammar);
        None when that depends on text past the end. Sets `key_follows` (a key is next)."""
        s, end = self.s, self.end
        self.key_follows = False
        if where == _KEY:
            q = self._skip_ws_markers(p)
            return None if q >= end else s[q] == ":"
        q = self._skip_ws(p)
        if q >= end:
            return None
        c = s[q]
        if where == _IN_ARRAY:
            if c == "]":
                return True
            if c == ",":
                r = self._skip_ws_markers(q + 1)
                return None if r >= end else s[r] == "]" or s[r] in _VALUE_START
            return False
        if c == "}":
            return True
        self.key_follows = True
        if c == ",":
            r = self._skip_ws_markers(q + 1)
            return None if r >= end else s[r] == "}" or self._key_at(r)
        if q > p or c in _MARKERS:  # a missing comma: whitespace, then a real next key
            return self._key_at(self._skip_ws_markers(q))
        return False

    def _key_at(self, r: int) -> bool | None:
        """Whether a key (`"name"`, then `:`) starts at `r`; None if the text ends first.

        Only a name as keys are written (letters, digits, `_`, `-`) counts: dialogue with
        quotes in it rarely looks like one.
        """
        s, end = self.s, self.end
        if r >= end:
            return None
        if s[r] != '"':
            return False
        m = _KEY_NAME.match(s, r + 1)
        k = m.end() if m is not None else r + 1
        if k >= end:
            return None
        if m is None or s[k] != '"':
            return False
        q = self._skip_ws_markers(k + 1)
        return None if q >= end else s[q] == ":"
