"""Verify: does the target hold exactly the source's live items? Forward and reverse passes
over any `Source` and `Sink`.

May import: `bridge.model`, `bridge.ports`.
"""
