"""End-to-end tests: worker, beat and relay processes, or the demo, started for real."""
