"""Operators' tools: reading topics back, rebuilding and comparing hash chains."""
