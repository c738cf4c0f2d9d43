"""The ClickHouse projection of the ledger's output topics: sink, schema, analytics, reconciliation."""
