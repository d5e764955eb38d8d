"""Strings from run files and the command line made safe where they are shown: one function per
place they end up. Whatever a run file holds (a variant, a CPU model, a commit, an error, a
path), it cannot move the cursor, set the terminal's title, reverse the text around it, become
rich markup, live HTML or a link in a Markdown summary, a spreadsheet formula, or a figure label
that takes minutes to draw.

- `terminal`: one line of text for a terminal or a text file (control characters, escape
  sequences and bidi overrides shown as `\\x1b`-style escapes, line breaks as spaces).
- `text`: the same as a rich `Text` (never markup, never emoji codes); `message` for a whole
  line printed through rich.
- `markdown`: a Markdown table cell or line: nothing in it is HTML, an image or a link.
- `csv_cell`: a CSV value: a text cell never starts a formula; numbers are left alone.
- `shorten`, `figure_label`: bounded labels for figures (mathtext `$` escaped too).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.text import Text

# C0 and C1 control characters, DEL, and the Unicode format characters that reorder or hide
# text (bidi embeddings, overrides and isolates, the Arabic letter mark).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Line breaks and tabs read as a space: a cell or a message stays one line.
_SPACES = re.compile("[\t\n\v\f\r\x1c-\x1e\x85\u2028\u2029]+")
# What would make Markdown live: HTML (`<`, `>`, entities), an image (`![`), a link (`](`,
# `][`), a bare URL GitHub links by itself (`://`, `www.`), and `|`, which ends a table cell.
_MARKDOWN = (
    ("\\", "\\\\"),  # first: a backslash of the text never escapes what follows it
    ("&", "&amp;"),
    ("<", "&lt;"),
    (">", "&gt;"),
    ("|", "\\|"),
    ("![", "!\\["),
    ("](", "\\]("),
    ("][", "\\]["),
    ("://", ":\\/\\/"),
    ("www.", "www\\."),
)
_FORMULA = ("=", "+", "-", "@")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
LABEL_LIMIT = 60  # characters of a figure label; the tables keep the full text


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal(value: object) -> str:
    """`value` as one line of plain text: line breaks and tabs as spaces, every other control
    or bidi character as a visible escape (`ESC` reads `\\x1b`)."""
    return _CONTROL.sub(_visible, _SPACES.sub(" ", str(value)))


def text(value: object, style: str = "") -> Text:
    """`terminal(value)` as a rich `Text`: shown as it is, never read as markup or emoji."""
    from rich.text import Text

    return Text(terminal(value), style=style)


def message(value: object) -> Text:
    """A whole line for `console.print` (its own line breaks kept, each line escaped)."""
    from rich.text import Text

    return Text("\n".join(terminal(line) for line in str(value).split("\n")))


def markdown(value: object) -> str:
    """`value` as one line of inline Markdown (a table cell, a heading) that holds no HTML, no
    image and no link: `<`, `>` and `&` as entities; `\\`, `|` and the brackets of images and
    links backslash-escaped. Emphasis and code spans are left as they are (they hide nothing)."""
    flat = " ".join(terminal(value).split())
    for raw, escaped in _MARKDOWN:
        flat = flat.replace(raw, escaped)
    return flat


def csv_cell(value: Any) -> Any:
    """A CSV value: text is one line and, where a spreadsheet would read a formula (`=`, `+`,
    `-`, `@`, after any blanks), starts with `'`; numbers, booleans and None are left as they
    are, and so is text that is a plain number (`-5`)."""
    if not isinstance(value, str):
        return value
    value = terminal(value)  # a tab or line break at the start is a space now
    if value.lstrip().startswith(_FORMULA) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def shorten(value: object, limit: int = LABEL_LIMIT) -> str:
    """`terminal(value)`, cut to `limit` characters with an ellipsis."""
    line = terminal(value if len(str(value)) <= 4 * limit else str(value)[: 4 * limit])
    return line if len(line) <= limit else line[: limit - 1] + "…"


def figure_label(value: object, limit: int = LABEL_LIMIT) -> str:
    """A matplotlib label: `shorten`, with `$` escaped (no mathtext)."""
    return shorten(value, limit).replace("$", r"\$")
