"""botocore's errors grouped by what they tell the user, for every place that turns one into
advice: the command line's last word on a failure (ddb_bridge/cli/main.py) and the assumed
role's own checks (assumed_role.py). Imports botocore's exceptions only, not boto3, so the
command line can use it before it knows whether the command talks to AWS at all."""

from __future__ import annotations

from botocore.exceptions import (
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

# No credentials were found, or only half of them: a configuration error.
NO_CREDENTIALS = (NoCredentialsError, PartialCredentialsError)
# The endpoint did not answer (or not in time): run it again once it is reachable.
NOT_ANSWERING = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError)
