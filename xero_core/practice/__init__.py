"""Practice workflows: clients matched to Xero contacts, documents pushed to Xero Files, Practice
Manager jobs driving chase campaigns, and Xero webhooks. See docs/internals.md.

The pipeline (xero_core.pipeline.plan) runs them as steps of each tenant's plan, beside the
financial ones; `Engine.sync_practices()` runs only them."""
