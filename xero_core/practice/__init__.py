"""Practice workflows: clients matched to Xero contacts, documents pushed to Xero Files, Practice
Manager jobs driving chase campaigns, and Xero webhooks. See docs/internals.md.

The practice workflows of every tenant as one call are `xero_core.pipeline.run.sync_practices`
(the pipeline plans them with the financial steps; practice/ and sync/ are peers)."""
