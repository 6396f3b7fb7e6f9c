"""librdkafka security options (`[kafka.extra]`) as Faust broker credentials.

The producers and admin clients take `[kafka.extra]` as is; Faust's consumer (aiokafka) has
its own credential objects, so the same options are translated here once. Supported:
PLAINTEXT, SSL (CA, client certificate), SASL_PLAINTEXT and SASL_SSL with PLAIN or SCRAM.
Anything else is a configuration error naming the option, not a silent plaintext connection.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from bridge.model.errors import ConfigError

_SASL_MECHANISMS = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}


def _ssl_context(extra: Mapping[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=extra.get("ssl.ca.location") or None)
    cert = extra.get("ssl.certificate.location")
    if cert:
        context.load_cert_chain(
            cert,
            keyfile=extra.get("ssl.key.location") or None,
            password=extra.get("ssl.key.password") or None,
        )
    if str(extra.get("ssl.endpoint.identification.algorithm", "https")).lower() == "none":
        context.check_hostname = False
    return context


def faust_credentials(extra: Mapping[str, Any]) -> Any | None:
    """Faust credentials for `extra`, or None for a plaintext connection."""
    import faust  # deferred, as in the worker: importing faust is slow

    protocol = str(extra.get("security.protocol", "PLAINTEXT")).upper()
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(_ssl_context(extra))
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        mechanism = str(extra.get("sasl.mechanism") or extra.get("sasl.mechanisms") or "PLAIN")
        if mechanism.upper() not in _SASL_MECHANISMS:
            raise ConfigError(
                f'kafka.extra."sasl.mechanism": {mechanism} is not supported by apply '
                f"(supported: {', '.join(sorted(_SASL_MECHANISMS))})"
            )
        return faust.SASLCredentials(
            username=extra.get("sasl.username"),
            password=extra.get("sasl.password"),
            mechanism=mechanism.upper(),
            ssl_context=_ssl_context(extra) if protocol == "SASL_SSL" else None,
        )
    raise ConfigError(f'kafka.extra."security.protocol": unknown protocol {protocol!r}')
