"""The streaming layer: the ledger core run by Faust agents on Kafka, with RocksDB changelog tables."""
