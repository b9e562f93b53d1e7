"""Pure policy: how long to wait, how far apart to send, what an outcome does next."""
