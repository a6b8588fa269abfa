"""The send engine: plan (selection, identity, fingerprint), loop (batches, concurrency, back-off),
journal (SQLite, the only record of outcomes), report (a view of the journal), lock; ``engine.send``
is the one entry point. Nothing here names a provider: ``providers.registry`` does."""
