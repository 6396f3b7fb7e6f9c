"""DynamoDB access shared by the stream and back-fill sources and the verify reader."""
