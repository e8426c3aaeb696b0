"""Before sign-in the admin app shows the sign-in form and nothing else: no page names in the sidebar
(issue 21 item 5: Streamlit drew its menu of pages/ before the app's own navigation ran)."""
from __future__ import annotations

import pytest

from test_browser import SHOTS, Stack, expect, idle

pytestmark = pytest.mark.browser

PASSWORD = "a long enough admin password"
TITLES = ("Connection", "Sync", "Data", "Clients & documents", "Practice Manager", "Webhooks")


def test_the_sign_in_page_lists_no_pages(tmp_path_factory):
    SHOTS.mkdir(parents=True, exist_ok=True)
    stack = Stack(tmp_path_factory.mktemp("signin"), env={"XERO_ADMIN_PASSWORD": PASSWORD})
    try:
        page = stack.context.new_page()
        # /practice-manager first: a fresh server's first run drew "Page not found" over it (legacy pages/ mode)
        for path in ("/practice-manager", "/", "/sync", "/callback", "/webhooks"):
            page.goto(stack.app_url + path)
            idle(page)
            expect(page.get_by_label("Admin password")).to_be_visible()
            assert page.locator('[data-testid="stSidebarNav"]').count() == 0, path
            text = page.inner_text("body")
            assert not [t for t in TITLES if t in text], (path, text)
            assert "Page not found" not in text, path
        page.screenshot(path=str(SHOTS / "signin.png"), full_page=True)
        # signed in, the menu is there and the address asked for is the page shown
        page.get_by_label("Admin password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        idle(page)
        expect(page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Webhooks")).to_be_visible()
        expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
        expect(page).to_have_url(stack.app_url + "/webhooks")
        assert page.get_by_text("Page not found").count() == 0
        page.close()
    finally:
        stack.close()
