"""An OAUTHBEARER token and the protocol of what fetches one (the OIDC endpoint, bridge/kafka/
oidc.py; MSK IAM, connectors/kafka_msk_iam.py). bridge/kafka/oauth.py renews and hands them
to the Kafka clients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float  # epoch seconds
    principal: str = ""  # the subject, when the token says it (librdkafka logs it)


class TokenSource(Protocol):
    """Fetches a new token on each call; may raise ConfigError (refused) or Unavailable."""

    def fetch(self) -> Token: ...
