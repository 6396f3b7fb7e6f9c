"""`ddb-bridge status --serve`: a live migration dashboard (one page, one JSON endpoint)."""
