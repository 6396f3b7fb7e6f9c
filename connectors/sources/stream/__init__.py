"""The stream source: DynamoDB Streams shards, their leases, and the record processor."""
