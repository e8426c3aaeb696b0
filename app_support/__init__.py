"""Streamlit-side helpers for the admin app (app.py, pages/). xero_core never imports this."""
