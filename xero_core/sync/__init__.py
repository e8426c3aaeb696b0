"""Financial sync: Xero → DuckDB, one step per resource (steps.py; the executor is pipeline/executor.py)."""
