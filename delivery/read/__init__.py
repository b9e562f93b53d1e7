"""The read side: what the API, the CLI and the exporter show of the ledger."""
