"""Practice workflows: clients matched to Xero contacts, documents pushed to Xero Files, Practice
Manager jobs driving chase campaigns, and Xero webhooks. See docs/internals.md."""


def sync_all_practices(settings, **kw):
    """See xero_core.practice.run.sync_all_practices (imported lazily: it pulls in the sync engine)."""
    from .run import sync_all_practices as run

    return run(settings, **kw)
