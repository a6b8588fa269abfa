"""The subscriber loop: ``newsletter serve`` takes sign-ups, confirmations, unsubscribes and provider events.

The service never edits a list file. Every accepted request becomes an event
in an event store (SQLite by default, PostgreSQL for several instances),
written before the reader gets an answer; ``newsletter subscribers sync``
applies the events to ``subscribers/<list>.csv`` through the list editor, so
the CSV in git stays the source of truth.
"""
