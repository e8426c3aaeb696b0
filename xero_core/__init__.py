"""Ledgerlink's engine: OAuth with Xero, an encrypted token vault, a rate-limited client,
and sync jobs that write Xero data into DuckDB. Never imports streamlit."""

__version__ = "0.1.0"
