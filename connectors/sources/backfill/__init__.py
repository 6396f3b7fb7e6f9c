"""The back-fill sources: runs and part claims, parallel Scan, DynamoDB export files."""
