"""Amazon MSK IAM authentication tokens (SASL/OAUTHBEARER) for every Kafka client.

The token is AWS's own, from `aws-msk-iam-sasl-signer-python`: a SigV4-presigned
`https://kafka.<region>.amazonaws.com/?Action=kafka-cluster%3AConnect...` URL, base64url
without padding, valid 15 minutes. It is signed with the bridge's AWS credential chain
(`connectors.dynamodb.aws.session`: static keys, profile, or boto3's default chain — and
whatever that session grows, such as assumed roles), so MSK sees the same identity as
DynamoDB, Streams and S3. The credentials are read afresh for each token: refreshed session
credentials (an instance role, an assumed role) are picked up on the next refresh.

Registered as the "aws_msk_iam" entry point of `ddb_bridge.kafka_token_sources`
(pyproject.toml); bridge/kafka/oauth.py finds it there and renews its tokens before expiry.
"""

from __future__ import annotations

from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
from botocore.credentials import CredentialProvider, Credentials
from botocore.exceptions import BotoCoreError

from bridge.kafka.token import Token
from bridge.model.errors import ConfigError
from bridge.runtime.settings import AwsSettings, KafkaSettings
from connectors.dynamodb.aws import session

WHERE = "[aws] access_key_id/secret_access_key, profile, or the environment's AWS credentials"


class _Frozen(CredentialProvider):
    """The signer takes a botocore CredentialProvider: this one hands over a snapshot."""

    METHOD = "ddb-bridge"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials


class MskIamToken:
    """A TokenSource (bridge/kafka/token.py) for an MSK cluster in `region`."""

    def __init__(self, region: str, aws: AwsSettings) -> None:
        self.region = region
        self.aws = aws

    def fetch(self) -> Token:
        try:
            found = session(self.aws).get_credentials()
            frozen = found.get_frozen_credentials() if found is not None else None
        except BotoCoreError as exc:
            raise ConfigError(
                f"MSK IAM: cannot read the AWS credentials ({exc}); check {WHERE}"
            ) from None
        if frozen is None or not frozen.access_key or not frozen.secret_key:
            raise ConfigError(f"MSK IAM: no AWS credentials to sign the token with; set {WHERE}")
        credentials = Credentials(frozen.access_key, frozen.secret_key, frozen.token)
        value, expiry_ms = MSKAuthTokenProvider.generate_auth_token_from_credentials_provider(
            self.region, _Frozen(credentials)
        )
        # MSK reads the principal from the signature; librdkafka needs none.
        return Token(value, expiry_ms / 1000)


def token_source(kafka: KafkaSettings) -> MskIamToken:
    """The entry point: the token source for `[kafka] auth = "aws_msk_iam"`."""
    aws = kafka.signing_aws()
    return MskIamToken(kafka.msk_region or aws.region, aws)
