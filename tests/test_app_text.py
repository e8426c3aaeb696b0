"""Text from Xero or a person is shown as text (issue 21 item 1): app_support.text, and a static
check that no page hands such text to a markdown-parsing Streamlit call without it.

The real-browser walk with hostile names is tests/test_browser_hostile.py.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from app_testing import ROOT  # noqa: F401 - puts the app's folder on sys.path
from app_support.text import WJ, code, md, neutral, plain, rows

HOSTILE = [
    "Australian Taxation Office [Reconnect](http://127.0.0.1:9199/ato) ![p](http://127.0.0.1:9199/ato.png)",
    "<img src=x onerror=alert(1)> <b>bold</b> <script>alert(1)</script>",
    "[click](javascript:alert(1)) <javascript:alert(1)> <http://127.0.0.1:9199/a>",
    "see www.evil.example, HTTPS://evil.example/x and ops@evil.example or mailto:ops@evil.example",
    "**loud** _quiet_ ~~gone~~ `tick` $x^2$ :red[alarm] :material/home: :smile: \\[already\\]",
    "# heading\n- item\n1. first\n> quote\n| a | b |\n|---|---|",
    "&amp; &#x3C;b&#x3E; &lt;",
]
PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
# Streamlit 1.67's text-level autolinker (mdast-util-gfm-autolink-literal), as its bundle has them:
# it runs on text after escapes are resolved, so escaping alone cannot stop it.
STREAMLIT_AUTOLINK_URL = r"(https?:\/\/|www(?=\.))([-.\w]+)([^ \t\r\n]*)"
STREAMLIT_AUTOLINK_EMAIL = r"(?<=^|\s|\p{P}|\p{S})([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)"


def _rendered(escaped: str) -> str:
    """What CommonMark makes of backslash escapes: each escaped punctuation character, as itself."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", escaped)


@pytest.mark.parametrize("value", HOSTILE)
def test_md_escapes_every_markup_character_and_reads_the_same(value):
    out = md(value)
    # every ASCII punctuation character is escaped: no link, image, tag, emphasis, directive or math can start
    i = 0
    while i < len(out):
        if out[i] == "\\":
            assert out[i + 1] in PUNCT, out
            i += 2
            continue
        assert out[i] not in PUNCT, (out, i)
        i += 1
    assert "\n" not in out
    # and a person reads exactly the text (newlines as spaces; the joiner is invisible)
    assert _rendered(out).replace(WJ, "") == neutral(value)


@pytest.mark.parametrize("value", HOSTILE)
def test_md_breaks_streamlits_text_level_autolinks(value):
    text = _rendered(md(value))
    assert not re.search(STREAMLIT_AUTOLINK_URL, text, re.I), text
    assert not re.search(r"([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)", text), text
    assert not re.search(r"(?i)(mailto|xmpp):[^\u2060]", text.replace("\\", ""))


def test_the_autolinker_md_breaks_is_the_one_streamlit_ships():
    """If Streamlit changes its autolinker, this says so before a hostile name does."""
    import streamlit

    bundles = list((Path(streamlit.__file__).parent / "static").rglob("StreamlitMarkdown*.js"))
    assert bundles, "Streamlit's markdown bundle is not where it was"
    js = "".join(b.read_text(errors="replace") for b in bundles)
    assert "/" + STREAMLIT_AUTOLINK_URL + "/gi" in js
    assert "/" + STREAMLIT_AUTOLINK_EMAIL + "/gu" in js
    assert "https://" in js  # sanity


def test_bidi_controls_are_visible_and_long_text_is_capped():
    assert neutral("invoice\u202efdp.exe") == "invoice[U+202E]fdp.exe"
    for ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\ufeff\x00\x1b":
        assert ch not in plain(f"a{ch}b") and ch not in md(f"a{ch}b") and ch not in code(f"a{ch}b")
    assert "\u200d" in plain("a\u200db")  # joiners stay: scripts and emoji need them
    assert plain("a\nb\r\nc\u2028d") == "a b c d"
    long = plain("x" * 5000)
    assert long.startswith("x" * 300) and long.endswith("… (4,700 more characters)") and len(long) < 340
    assert len(plain("y" * 5000, 2000)) < 2040
    assert md(None) == "" and plain(None) == "" and md(12) == "12"


def test_code_spans_hold_any_backticks():
    assert code("a`b") == "`` a`b ``"
    assert code("``x") == "``` ``x ```"
    assert code("http://x/[y](z)") == "` http://x/[y](z) `"
    assert code("") == ""


def test_rows_neutralise_every_text_cell():
    import polars as pl

    out = rows([{"name": "a\u202eb", "n": 3, "none": None}])
    assert out == [{"name": "a[U+202E]b", "n": 3, "none": None}]
    frame = rows(pl.DataFrame({"name": ["a\u2066b", None], "n": [1, 2]}))
    assert frame["name"].to_list() == ["a[U+2066]b", None] and frame["n"].to_list() == [1, 2]


# --------------------------------------------------------------------------- the static check
# Streamlit calls whose text (first argument, or these keywords) is parsed as markdown in 1.67.
MARKDOWN_CALLS = {
    "markdown", "write", "caption", "info", "success", "warning", "error", "exception", "toast", "title", "header",
    "subheader", "metric", "badge", "button", "link_button", "page_link", "toggle", "checkbox", "radio",
    "expander", "popover", "progress", "spinner", "form_submit_button", "text_input", "text_area", "number_input",
    "date_input", "time_input", "selectbox", "multiselect", "file_uploader", "slider", "select_slider",
    "download_button", "status",
}
TEXT_KEYWORDS = {"label", "body", "text", "help"}
# Calls whose result is safe inside markdown: the helper itself, and the app's own formats of
# times, dates and numbers.
SAFE_CALLS = {"md", "code", "when", "day", "stamp", "len", "int", "eta_text"}
# Option labels: radio parses markdown in them; selectbox and multiselect show them as text.
MARKDOWN_OPTIONS = {"radio"}
PLAIN_OPTIONS = {"selectbox", "multiselect"}
SOURCES = sorted([*(ROOT / "pages").glob("*.py"), *(ROOT / "app_support").glob("*.py"), ROOT / "app.py"])


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _assignments(tree: ast.AST) -> dict[str, list[ast.AST]]:
    """name -> every value assigned to it in the module (a loop or comprehension target, or a
    parameter, gets a None: not known to be safe)."""
    out: dict[str, list] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        out.setdefault(n.id, []).append(node.value if isinstance(t, ast.Name) else None)
        elif (isinstance(node, ast.For) and isinstance(node.target, ast.Tuple)
              and isinstance(node.iter, (ast.Tuple, ast.List))
              and all(isinstance(e, ast.Tuple) and len(e.elts) == len(node.target.elts) for e in node.iter.elts)):
            # for a, b in ((x1, y1), (x2, y2)): each name takes the items in its position
            for i, t in enumerate(node.target.elts):
                if isinstance(t, ast.Name):
                    out.setdefault(t.id, []).extend(e.elts[i] for e in node.iter.elts)
        elif isinstance(node, (ast.For, ast.comprehension)):
            for n in ast.walk(node.target):
                if isinstance(n, ast.Name):
                    out.setdefault(n.id, []).append(None)
        elif isinstance(node, ast.arguments):
            for a in node.posonlyargs + node.args + node.kwonlyargs:
                out.setdefault(a.arg, []).append(None)
    return out


_ASSIGNED: dict[str, list] = {}
_SEEN: set[str] = set()


def _safe(node: ast.AST) -> bool:
    """True when this expression cannot carry untrusted markup into markdown."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        if node.id.isupper():
            return True  # a module constant of ours
        values = _ASSIGNED.get(node.id)
        if not values or node.id in _SEEN:
            return False
        _SEEN.add(node.id)
        try:
            return all(v is not None and _safe(v) for v in values)
        finally:
            _SEEN.discard(node.id)
    if isinstance(node, (ast.ListComp, ast.GeneratorExp)):
        return _safe(node.elt)
    if isinstance(node, (ast.List, ast.Tuple)):
        return all(_safe(e) for e in node.elts)
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id.isupper():
        return True
    if isinstance(node, ast.JoinedStr):
        return all(_safe(v) for v in node.values)
    if isinstance(node, ast.FormattedValue):
        # a numeric format ({n:,}, {x:.0f}) only ever prints digits
        spec = node.format_spec
        if spec is not None and all(isinstance(v, ast.Constant) for v in spec.values):
            if re.fullmatch(r"[,_]?(\.\d+)?[dfn%]?|,", "".join(v.value for v in spec.values)):
                return True
        return _safe(node.value)
    if isinstance(node, ast.Call):
        if _name(node.func) in SAFE_CALLS:
            return True
        # CONSTANT.get(...): a lookup in one of our own tables (icons, words)
        if (_name(node.func) == "get" and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
                and node.func.value.id.isupper()):
            return True
        # "sep".join(<safe items>)
        if _name(node.func) == "join" and isinstance(node.func, ast.Attribute) and _safe(node.func.value) and node.args:
            return _safe(node.args[0])
        return False
    if isinstance(node, ast.BinOp):
        return _safe(node.left) and _safe(node.right)
    if isinstance(node, ast.IfExp):
        return _safe(node.body) and _safe(node.orelse)
    if isinstance(node, ast.BoolOp):
        return all(_safe(v) for v in node.values)
    return False


def _plain_options(node: ast.AST) -> bool:
    if _name(node) == "plain":
        return True
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id.isupper():
        return True  # CONSTANT.get: our own words
    if isinstance(node, ast.Lambda):
        body = node.body
        return isinstance(body, ast.Call) and _name(body.func) == "plain" or (
            isinstance(body, ast.Constant))
    return False


def unsafe_calls(source: str, filename: str = "<src>") -> list[str]:
    """Each markdown-parsing Streamlit call given text that did not go through app_support.text."""
    out = []
    tree = ast.parse(source, filename)
    _ASSIGNED.clear()
    _ASSIGNED.update(_assignments(tree))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if not isinstance(func, ast.Attribute) or func.attr not in MARKDOWN_CALLS:
            continue
        # st.x(...), col.x(...), st.sidebar.x(...): anything but str methods like "".join
        if isinstance(func.value, ast.Constant):
            continue
        texts = node.args[:1] + [k.value for k in node.keywords if k.arg in TEXT_KEYWORDS]
        if func.attr == "metric":  # label, value and delta are all markdown
            texts = node.args[:3] + [k.value for k in node.keywords if k.arg in TEXT_KEYWORDS | {"value", "delta"}]
        if func.attr == "progress":  # progress(value, text)
            texts = node.args[1:2] + [k.value for k in node.keywords if k.arg == "text"]
        bad = [t for t in texts if not _safe(t)]
        for k in node.keywords:
            if k.arg == "format_func":
                if func.attr in MARKDOWN_OPTIONS and not (isinstance(k.value, ast.Lambda) and _safe(k.value.body)):
                    bad.append(k.value)
                if func.attr in PLAIN_OPTIONS and not _plain_options(k.value):
                    bad.append(k.value)
        out += [f"{filename}:{t.lineno}: {func.attr}({ast.unparse(t)[:80]})" for t in bad]
    # Chosen options of selectbox/multiselect without format_func show the values themselves: fine only for
    # constants, which the check cannot know; those calls are listed in PLAIN_OPTION_VALUES below.
    return out


def test_the_static_check_catches_what_it_should():
    bad = '''
st.markdown(f"**{name}**: {x}")
st.success("Added " + c["name"])
st.error(say(exc))
col.metric(names[t], 3)
st.radio("x", ids, format_func=lambda i: names[i])
st.selectbox("Client", ids, format_func=lambda k: by_id[k]["name"])
st.toast(msg)
st.tabs([name])
'''
    good = '''
st.markdown(f"**{md(name)}**: {widgets.when(t)} {n:,} {len(x)}")
st.success("Added " + md(c["name"]))
st.error(md(say(exc), 1000))
col.metric(md(names[t]), f"{b:,} calls")
st.radio("x", ids, format_func=lambda i: md(names[i]))
st.selectbox("Client", ids, format_func=lambda k: plain(by_id[k]["name"]))
st.caption(", ".join(f"{md(k)}" for k in ks))
'''
    assert len(unsafe_calls(bad)) == 7  # st.tabs takes a list: the walk below checks its items
    assert unsafe_calls(good) == []


def test_no_page_passes_untrusted_text_to_markdown():
    found = []
    for path in SOURCES:
        if path.name == "text.py":
            continue
        found += unsafe_calls(path.read_text(), str(path.relative_to(ROOT)))
    assert not found, "Wrap these in app_support.text.md/code (or plain for options):\n" + "\n".join(found)


def test_tab_labels_are_constants_or_escaped():
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        _ASSIGNED.clear()
        _ASSIGNED.update(_assignments(tree))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node.func) == "tabs" and node.args:
                items = node.args[0].elts if isinstance(node.args[0], (ast.List, ast.Tuple)) else [node.args[0]]
                found += [f"{path.name}:{node.lineno}" for i in items if not _safe(i)]
    assert not found, found
