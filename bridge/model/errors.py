"""The error hierarchy: every error says whether retrying can help.

Connectors translate driver exceptions into these at their boundary (`raise ... from exc`),
so the core decides what to do (retry with backoff, dead-letter, or stop) without knowing
which driver failed (docs/design.md, section 13).

Whose fault an error is matters as much as whether retrying helps: `PermanentError` from a
sink means *one event* carries something the target cannot hold, so apply dead-letters that
event and moves on; `TargetError` means the *target* refuses every write (read-only, access
denied, a table gone, credentials expired), so dead-lettering would empty the topic into
the DLQ while lag reads 0. Apply waits or stops on it instead, committing nothing past the
last written event.
"""


class BridgeError(Exception):
    """Root of every error ddb-bridge raises on purpose."""


class TransientError(BridgeError):
    """May succeed if retried later: throttling, a target that is down, a broker timeout."""


class Unavailable(TransientError):
    """A service the command needs at start-up (Kafka) did not answer: nothing was done that
    running the command again would not redo. The command exits 75 (EX_TEMPFAIL), so a
    supervisor can tell "restart me" from a failure that needs an operator."""


class TargetError(BridgeError):
    """The target as a whole refuses writes: no event's fault, never dead-lettered.

    `retryable`: the condition may end without anyone restarting the worker (a failover
    that left the connection on a read-only standby, credentials that the AWS chain
    refreshes), so apply waits with backoff; otherwise (access denied, a missing table or
    column, a read-only file) apply stops with exit code 1 until an operator fixes it.
    `table` names the target table when the sink knows which one refused.
    """

    def __init__(self, message: str, *, table: str | None = None, retryable: bool = False):
        super().__init__(message)
        self.table = table
        self.retryable = retryable


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
