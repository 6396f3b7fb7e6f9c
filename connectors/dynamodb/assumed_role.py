"""Credentials of an assumed IAM role ([aws] role_arn), renewed before they expire.

botocore's RefreshableCredentials holds them: every request asks it for the current keys, and
it calls AssumeRole again 15 minutes before expiry (a failure then is logged and the old keys
kept) or, at the latest, 10 minutes before (a failure then is the request's error, which the
readers' retry loops treat as any unreachable endpoint); shorter sessions, shorter windows.
So a daemon outlives its first credentials, and every client made from the same settings
shares one set: one AssumeRole per role and process, not one per client or thread.

The first AssumeRole happens when the first session is made, so a role that cannot be assumed
stops a command at start with one line naming the role and what to check.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from bridge.model.errors import ConfigError, Unavailable
from bridge.runtime.settings import AwsSettings
from connectors.dynamodb.aws_errors import NO_CREDENTIALS, NOT_ANSWERING

if TYPE_CHECKING:
    import boto3

log = logging.getLogger(__name__)

_STS_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"})

_SHARED: dict[tuple[Any, ...], RefreshableCredentials] = {}
_SHARED_LOCK = threading.Lock()


class _NoTraceback(logging.Filter):
    """botocore logs a failed renewal with its traceback (a warning, as the current keys
    still serve); the reason is logged on one line by the renewer, so the stack goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Refreshing temporary credentials failed"):
            record.exc_info = None
            record.exc_text = None
        return True


logging.getLogger("botocore.credentials").addFilter(_NoTraceback())


def now() -> datetime:
    """The clock the credentials' expiry is compared with (tests move it)."""
    return datetime.now(UTC)


def credentials(aws: AwsSettings, base: boto3.session.Session) -> RefreshableCredentials:
    """The role's refreshable credentials, assumed with `base`'s (made once per settings)."""
    key = _key(aws)
    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is None:
            fetch = _fetcher(aws, base)
            first = _first(aws, fetch)
            windows = refresh_windows(aws.role_duration_s)
            found = RefreshableCredentials(
                access_key=first["access_key"],
                secret_key=first["secret_key"],
                token=first["token"],
                expiry_time=datetime.fromisoformat(first["expiry_time"]),
                refresh_using=_renewer(aws, fetch),
                method="assume-role",
                # Late-bound, so that a test's clock reaches credentials made before it moved.
                time_fetcher=lambda: now(),
                advisory_timeout=windows["advisory_timeout"],
                mandatory_timeout=windows["mandatory_timeout"],
            )
            _SHARED[key] = found
        return found


def refresh_windows(duration_s: int) -> dict[str, int]:
    """How long before expiry to renew: botocore's 15 minutes (advisory: a failure keeps the
    old keys) and 10 minutes (mandatory: the request waits for new keys), shrunk for short
    sessions, or 15-minute credentials would be renewed at every request."""
    return {
        "advisory_timeout": min(15 * 60, duration_s // 3),
        "mandatory_timeout": min(10 * 60, duration_s // 6),
    }


def _key(aws: AwsSettings) -> tuple[Any, ...]:
    def plain(value: Any) -> Any:
        return value.get_secret_value() if value is not None else None

    return (
        aws.role_arn,
        aws.external_id,
        aws.session_name(),
        aws.role_duration_s,
        aws.region,
        aws.endpoint("sts"),
        aws.profile,
        plain(aws.access_key_id),
        plain(aws.secret_access_key),
        plain(aws.session_token),
    )


def _fetcher(aws: AwsSettings, base: boto3.session.Session) -> Any:
    assert aws.role_arn is not None
    request: dict[str, Any] = {
        "RoleArn": aws.role_arn,
        "RoleSessionName": aws.session_name(),
        "DurationSeconds": aws.role_duration_s,
    }
    if aws.external_id:
        request["ExternalId"] = aws.external_id

    def fetch() -> dict[str, Any]:
        # A client per call: the base credentials may themselves rotate (an instance role).
        sts = base.client(
            "sts", region_name=aws.region, endpoint_url=aws.endpoint("sts"), config=_STS_CONFIG
        )
        creds = sts.assume_role(**request)["Credentials"]
        expiry = creds["Expiration"]
        log.info(
            "assumed role",
            extra={"role_arn": aws.role_arn, "session": aws.session_name(),
                   "expires": expiry.isoformat()},
        )  # fmt: skip
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": expiry.isoformat(),
        }

    return fetch


def _renewer(aws: AwsSettings, fetch: Any) -> Any:
    def renew() -> dict[str, Any]:
        try:
            renewed: dict[str, Any] = fetch()
            return renewed
        except (ClientError, BotoCoreError) as exc:
            # Said here with the role; botocore's own line about it loses its traceback.
            log.warning(
                "could not renew the assumed role's credentials (the current ones serve until "
                "shortly before they expire): %s: %s",
                aws.role_arn,
                " ".join(str(exc).split()),
            )
            raise

    return renew


def _first(aws: AwsSettings, fetch: Any) -> dict[str, Any]:
    """The first AssumeRole, its failure said in one line naming the role."""
    role = f"cannot assume role {aws.role_arn}"
    sts = aws.endpoint("sts") or "the region's STS endpoint"
    try:
        first: dict[str, Any] = fetch()
        return first
    except ClientError as exc:
        error = exc.response.get("Error", {})
        said = " ".join(str(error.get("Message", exc)).split())  # one line, whatever STS sent
        raise ConfigError(
            f"{role}: {error.get('Code', 'refused')}: {said} — check "
            "[aws] role_arn and external_id, the role's trust policy, and that the base "
            "credentials ([aws] access_key_id/profile, else the default chain) may "
            "sts:AssumeRole it"
        ) from exc
    except NO_CREDENTIALS as exc:
        raise ConfigError(
            f"{role}: no base credentials to assume it with ({exc}) — set [aws] "
            "access_key_id and secret_access_key, or profile, or give credentials the AWS way"
        ) from exc
    except NOT_ANSWERING as exc:
        raise Unavailable(
            f"{role}: STS did not answer at {sts}: {exc} — check [aws.endpoints] sts "
            "(or [aws] endpoint_url and region), and run it again once it is reachable"
        ) from exc
    except BotoCoreError as exc:
        raise ConfigError(f"{role}: {exc} — check [aws] role_arn and [aws.endpoints] sts") from exc
