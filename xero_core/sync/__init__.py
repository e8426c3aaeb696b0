"""Financial sync: Xero → DuckDB, one step per resource (see runner.sync_all)."""
