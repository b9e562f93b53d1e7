"""The SQL ledger: models, engine and sessions, queries, states."""
