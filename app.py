"""Ledgerlink admin app: `streamlit run app.py` (or `bash scripts/demo`).

This file is read twice, on purpose:
- `streamlit run` finds `app = st.App(...)` below and imports this module (name "app") to serve
  it, which adds the webhook receiver (POST /webhooks/xero) to the app's own server;
- Streamlit then runs this same file as the script (name "__main__") on every page view: it only
  builds the navigation and the shared widgets; the pages are in pages/.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

if __name__ == "__main__":
    from app_support.shell import main

    main()
else:
    from app_support.auth import refuse_unprotected_network_bind

    refuse_unprotected_network_bind()  # beyond loopback with no sign-in: exit before serving anyone
    from streamlit.runtime.pages_manager import PagesManager

    # Streamlit's legacy pages/ mode stays on in a fresh server until some run calls st.navigation, so
    # the first visit after a start ran under a menu built from pages/'s file names: /practice-manager
    # (file practice_manager.py) drew "Page not found" over the page. The shell's navigation is the
    # only one, from the first run on.
    PagesManager.uses_pages_directory = False
    from app_support.guard import on_script_error
    from app_support.lifecycle import lifespan
    from app_support.webhook_route import routes

    app = st.App(__file__, routes=routes(), lifespan=lifespan, on_script_error=on_script_error)
