"""Text from Xero or a person, shown as text: the one helper every page uses.

Streamlit parses markdown almost everywhere it shows a string: st.markdown/st.write/st.caption,
st.success/info/warning/error, st.toast, headings, and the labels of widgets, expanders, tabs,
metrics (label and value), badges, buttons, progress bars and radio options. Streamlit 1.67's
markdown is GitHub's: links, images, `<autolinks>`, raw HTML (dropped, or rendered with
unsafe_allow_html), emphasis, lists, tables, `$math$`, `:color[directives]`, and, found on the
already-parsed *text* after escapes are resolved, bare `http://`, `https://`, `www.` and
`name@domain` autolinks. So a contact named `[Reconnect](http://evil)` must never reach those
calls as it is.

- `md(value)`: for every markdown-parsing place. Backslash-escapes all ASCII punctuation (no
  markup can start: links, images, HTML tags, emphasis, directives, math, lists, headings) and puts
  an invisible WORD JOINER into what the text-level autolinker would match (`http:⁠//`, `www⁠.`,
  `@⁠domain`): escapes cannot stop that one, since it runs after they are resolved.
- `code(value)`: the value as an inline code span (nothing inside is parsed).
- `plain(value)`: for places that show text as it is (selectbox and multiselect options,
  st.text, st.code): no escapes (they would show), only the neutralising below.
- `rows(data)`: every text cell of a table for st.dataframe, through `plain`.

All of them show bidi controls (which can make `invoice<RLO>fdp.exe` read `invoiceexe.pdf`) and other
invisible controls as visible `[U+202E]` marks, put newlines on one line, and cap the length
(a 10,000-character name must not push a page's layout around; the cap says how much was left out).
"""
from __future__ import annotations

import re
from typing import Any

# Bidi embedding/override/isolate controls and the implicit marks (LRM, RLM, ALM), shown as marks;
# C0/C1 controls (other than whitespace) and BOM too. ZWJ/ZWNJ stay: scripts need them.
_INVISIBLE = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\ufeff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINEBREAKS = re.compile("[\r\n\u2028\u2029\x85\t]+")
_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character: CommonMark can escape each
WJ = "\u2060"  # WORD JOINER: invisible, no line break; breaks the autolinker's patterns
# What Streamlit's text-level autolinker (mdast-util-gfm-autolink-literal) matches, cut at its start.
_AUTOLINK = re.compile(r"(?i)https?(?=\\:)|www(?=\\\.)|@(?=[-\w])|(?:mailto|xmpp)(?=\\:)")

LIMIT = 300  # characters of one value; error details get more


def neutral(value: Any, limit: int = LIMIT, *, lines: bool = False) -> str:
    """The value as one line of visible characters, at most `limit` of them (+ how many were cut).
    `lines=True` keeps its line breaks (st.text of a message)."""
    if value is None:
        return ""
    text = str(value)
    text = _INVISIBLE.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)
    if lines:
        text = re.sub("\r\n?|[\u2028\u2029\x85]", "\n", text)
    else:
        text = _LINEBREAKS.sub(" ", text)
    if limit and len(text) > limit:
        text = f"{text[:limit]}… ({len(text) - limit:,} more characters)"
    return text


def plain(value: Any, limit: int = LIMIT, *, lines: bool = False) -> str:
    """For places that show a string as it is (selectbox options, st.text, st.code, tables)."""
    return neutral(value, limit, lines=lines)


def md(value: Any, limit: int = LIMIT) -> str:
    """For places that parse markdown: the value shows as the same text, and nothing else."""
    text = neutral(value, limit)
    text = _PUNCT.sub(r"\\\1", text)
    # After escaping, "http:" reads "http\:", "www." reads "www\.": the joiner goes before the backslash.
    return _AUTOLINK.sub(lambda m: m.group() + WJ, text)


def code(value: Any, limit: int = LIMIT) -> str:
    """The value as an inline code span, whatever backticks it holds."""
    text = neutral(value, limit)
    longest = max((len(r) for r in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}" if text else ""


def rows(data: Any, limit: int = 2000) -> Any:
    """Rows for st.dataframe (list of dicts, or a polars frame) with every text cell through `plain`.
    Tables never parse markdown; this only makes controls visible and very long cells bounded."""
    if data is None:
        return data
    if hasattr(data, "with_columns") and hasattr(data, "schema"):  # a polars frame
        import polars as pl

        texts = [n for n, t in data.schema.items() if t == pl.String]
        if not texts:
            return data
        return data.with_columns([pl.col(n).map_elements(lambda v: plain(v, limit), return_dtype=pl.String)
                                  for n in texts])
    return [{k: (plain(v, limit) if isinstance(v, str) else v) for k, v in dict(r).items()} for r in data]


def read_back(shown: str) -> str:
    """What a reader sees of markdown source made with `md()`: escapes resolved, joiners gone
    (for tests that compare the words on a page)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", str(shown)).replace(WJ, "")
