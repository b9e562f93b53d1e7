"""The public Python API's writing side: enqueue, accounts, replay, pruning."""
