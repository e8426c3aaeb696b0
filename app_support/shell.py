"""The app's frame: page config, sign-in, banner, navigation, tenant picker, error wrapper."""
from __future__ import annotations

import streamlit as st

from . import auth, widgets
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


def main() -> None:
    st.set_page_config(page_title="Ledgerlink admin", page_icon=":material/link:", layout="wide")
    s = widgets.settings()
    auth.gate(s)
    pages = [
        st.Page(path, title=title, icon=icon, url_path=url, default=(i == 0))
        for i, (path, title, icon, url) in enumerate(PAGES)
    ]
    # Xero redirects here (XERO_REDIRECT_URI = <app>/callback); not in the menu.
    pages.append(st.Page("pages/callback.py", title="Finishing connection", icon=":material/login:",
                         url_path="callback", visibility="hidden"))
    page = st.navigation(pages)
    widgets.mock_banner(s)
    widgets.flash()
    widgets.tenant_picker(s)
    widgets.reset_demo_control(s)
    with shown_errors():
        page.run()
