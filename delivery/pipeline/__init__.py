"""The pipeline: publishing after commit, sending a chunk, reconciling the outbox."""
