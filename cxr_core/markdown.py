"""Untrusted text inside Markdown: shown as the characters it is, never as markup.

File names, DICOM fields, run names and error messages that quote them come from visitors or
from files on disk. Placed raw in Markdown, ``**x**[link](http://evil)`` renders bold with a live
link and ``![t](http://host/t.png)`` makes every viewer's browser fetch that URL.
:func:`escape_markdown` puts a backslash before every ASCII punctuation character that
Markdown gives a meaning (CommonMark lets any of them be escaped), so no emphasis, link, image,
HTML tag, code span, table, heading, list, math (``$``) or Streamlit directive (``:red[...]``)
can start; control characters and line breaks become spaces. GitHub-flavoured Markdown also
turns bare ``http://...``, ``www.`` and ``a@b.c`` text into links after parsing, escapes or
not, so an invisible word joiner (U+2060) goes before ``://``, after ``www`` and after ``@``.
"""

from __future__ import annotations

import re

__all__ = ["JOINER", "code_span", "escape_markdown"]

#: ASCII punctuation that can start or end Markdown, HTML, an entity, a URL, an e-mail link,
#: math or a Streamlit directive. Other punctuation (, ; ' " % ? / = ^) never does.
_SPECIAL = "\\`*_{}[]()<>#+-.!|~$:&@"
_ESCAPES = {ord(ch): "\\" + ch for ch in _SPECIAL}
# Line breaks and other control characters would start new Markdown blocks.
_ESCAPES.update({code: " " for code in range(32)})
_ESCAPES[0x7F] = " "
#: An invisible word joiner: breaks GFM's autolink patterns without changing what is shown.
JOINER = "\u2060"
_AUTOLINK = re.compile(r"(?i)(?<=[a-z0-9])(?=\\?:\\?/\\?/)|(?<=www)(?=\\?\.)|(?<=@)")


def escape_markdown(text: object, limit: int = 500) -> str:
    """Return ``text`` escaped so that Markdown shows it literally.

    Args:
        text: Anything; it is converted with ``str``.
        limit: Longest text kept, in characters (longer text ends in "...").

    Returns:
        The escaped text, e.g. ``"\\*\\*bold\\*\\*.png"`` for ``"**bold**.png"``.
    """
    value = str(text)
    if len(value) > limit:
        value = value[: limit - 3] + "..."
    return _AUTOLINK.sub(JOINER, value.translate(_ESCAPES))


def code_span(text: object, limit: int = 500) -> str:
    """Return ``text`` as a Markdown code span (monospace, nothing inside is interpreted).

    The fence is one backtick longer than the longest run of backticks in ``text``, as
    CommonMark requires; control characters become spaces.
    """
    value = str(text)[:limit].translate({code: " " for code in range(32)})
    runs = [len(run) for run in re.findall("`+", value)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if value[:1] in ("`", " ") or value[-1:] in ("`", " ") else ""
    return f"{fence}{pad}{value}{pad}{fence}"
