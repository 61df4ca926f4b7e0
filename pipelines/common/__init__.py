"""What every layer shares: usage errors, failure messages (redacted), the local folder."""
