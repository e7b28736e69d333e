"""The tamper-evident audit log: typed events, a hash chain, verification and checkpoints."""
