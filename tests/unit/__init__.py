"""Unit tests: pure code, no Redis, no SQL, no processes, no sockets."""
