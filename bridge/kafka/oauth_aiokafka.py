"""aiokafka's side of the refreshing OAuth token (apply's consumer, through Faust's
OAuthCredentials): a module of its own, so the commands that never start an aiokafka client
(stream, backfill, status...) do not pay for importing it."""

from __future__ import annotations

import asyncio

from aiokafka.abc import AbstractTokenProvider

from bridge.kafka.oauth import RefreshingToken


class AiokafkaTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """aiokafka's token provider for one refreshing token."""

    def __init__(self, token: RefreshingToken) -> None:
        self._token = token

    async def token(self) -> str:
        # The source may do blocking HTTP: off the event loop.
        current = await asyncio.get_running_loop().run_in_executor(None, self._token.current)
        return current.value
