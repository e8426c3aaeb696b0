"""The demo app the fake Xero registers at start: the values mock mode's settings default to.

They live here, in the fake, because the fake imports nothing of the product; `xero_core.settings`
reads them from this module. Not secrets: they only ever open the offline fake.
Importing this module loads nothing else of the fake (the package's `__init__` is lazy).
"""

DEMO_CLIENT_ID = "LEDGERLINKDEMOCLIENT0000000000000"
DEMO_CLIENT_SECRET = "ledgerlink-demo-secret-only-valid-on-the-fake"
# The admin app's callback on its default port (8501), by name and by address.
DEMO_REDIRECT_URIS = ("http://localhost:8501/callback", "http://127.0.0.1:8501/callback")
DEMO_APP_NAME = "Ledgerlink (demo)"
