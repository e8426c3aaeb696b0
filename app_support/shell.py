"""The app's frame: page config, sign-in, banner, navigation, tenant picker, error wrapper."""
from __future__ import annotations

import contextvars

import streamlit as st

from . import auth, engine, guard, jobs_view, widgets
from .guard import shown_errors

PAGES = (
    # (file, title, icon, url_path)
    ("pages/connection.py", "Connection", ":material/link:", "connection"),
    ("pages/sync.py", "Sync", ":material/sync:", "sync"),
    ("pages/data.py", "Data", ":material/monitoring:", "data"),
    ("pages/clients.py", "Clients & documents", ":material/group:", "clients"),
    ("pages/practice_manager.py", "Practice Manager", ":material/work:", "practice-manager"),
    ("pages/webhooks.py", "Webhooks", ":material/webhook:", "webhooks"),
)


_IN_FRAME: contextvars.ContextVar[bool] = contextvars.ContextVar("ledgerlink_in_frame", default=False)


def ensure_frame() -> None:
    """First call on every page: never render a page outside app.py's frame (sign-in, banner).

    Streamlit's legacy `pages/` folder mode runs pages/<name>.py *directly* when a run asks for
    /<name> before any st.navigation call has turned that mode off (every AppTest run; the served
    app turns it off in app.py before its first run). That would skip the sign-in gate, so such a
    run draws the whole frame here (which runs this page inside it) and ends.
    """
    if _IN_FRAME.get():
        return
    main()
    st.stop()


def main() -> None:
    token = _IN_FRAME.set(True)
    shown = guard.begin_run()
    try:
        _main()
    finally:
        guard.end_run(shown)
        _IN_FRAME.reset(token)


def _main() -> None:
    st.set_page_config(page_title="Ledgerlink admin", page_icon=":material/link:", layout="wide")
    s = widgets.settings()
    # One open of the database for the whole page view: a page reads it 10-25 times (frame, picker,
    # sections), and each open and close of the file costs ~18 ms of CPU (catalog, checkpoint),
    # most of a click's time. The block closes the file when the view ends (or sooner when idle),
    # so the scheduler and the CLI wait at most one page view for it (xero_core.db.shared).
    with engine.one_database_open(s.db_path):
        _frame(s)


def _frame(s) -> None:
    pages = [st.Page(path, title=title, icon=icon, url_path=url) for path, title, icon, url in PAGES]
    # Streamlit serves the default page at "/" and ignores its url_path, so /connection would be
    # "Page not found". Every menu page keeps its own address; "/" is a hidden page that goes to
    # the first of them.
    first = pages[0]
    pages.insert(0, st.Page(lambda: st.switch_page(first), title="Ledgerlink", url_path="home",
                            default=True, visibility="hidden"))
    # Xero redirects here (XERO_REDIRECT_URI = <app>/callback); not in the menu.
    pages.append(st.Page("pages/callback.py", title="Finishing connection", icon=":material/login:",
                         url_path="callback", visibility="hidden"))
    # Before sign-in the sidebar shows nothing: a navigation with every page hidden replaces the menu
    # Streamlit would otherwise draw from the pages/ folder (page names), and keeps each address valid
    # (/callback?code=… still finishes after sign-in).
    auth.gate(s, hide_menu=lambda: st.navigation(pages, position="hidden"))
    widgets.mock_banner(s)
    page = st.navigation(pages)
    widgets.flash()
    widgets.tenant_picker(s)
    jobs_view.sidebar_jobs(s)
    widgets.reset_demo_control(s)
    _store_problems(s)
    with shown_errors():
        page.run()


def _store_problems(s) -> None:
    """A damaged jobs.sqlite or a file where the vault folder should be is said on every page, before
    Sync now meets it (issue 21 §4); a page meeting the same problem adds no second copy (guard)."""
    with shown_errors():
        for problem in engine.store_problems(s):
            guard.show(problem)
