"""Integration tests: real Redis, a real SQL ledger, the simulator in this process; no workers."""
