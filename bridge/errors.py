"""The error hierarchy: every error says whether retrying can help.

Connectors translate driver exceptions into these at their boundary (`raise ... from exc`),
so the core decides what to do (retry with backoff, dead-letter, or stop) without knowing
which driver failed.
"""


class BridgeError(Exception):
    """Root of every error ddb-bridge raises on purpose."""


class TransientError(BridgeError):
    """May succeed if retried later: throttling, a target that is down, a broker timeout."""


class PermanentError(BridgeError):
    """Will fail again however often it is retried: the message names the item/file/line/shard."""


class ConfigError(PermanentError):
    """The configuration is invalid; the message names the offending key. Exit code 2."""


class DecodeError(PermanentError):
    """A Kafka record or an input line could not be decoded (unknown schema, corrupt body)."""


class AttributeTypeError(PermanentError):
    """A DynamoDB attribute value is not one of the ten DynamoDB types, or is malformed."""


class DataLossError(PermanentError):
    """A position fell behind what the source still holds (e.g. a trimmed stream shard)."""


class MessageTooLargeError(PermanentError):
    """Kafka refused a record for its size: the stream or back-fill stops before passing it.

    Retrying cannot help until a setting changes; the message names the table, the key, the
    size and the setting. A stream record not published within the stream's 24-hour retention
    is lost, hence an alarm, not a retry loop.
    """
