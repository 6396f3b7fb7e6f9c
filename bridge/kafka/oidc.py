"""OAuth 2.0 client-credentials tokens (RFC 6749 section 4.4) for SASL/OAUTHBEARER, as Confluent
Cloud, Strimzi (Keycloak) and other OIDC identity providers issue them.

The client authenticates with HTTP Basic (section 2.3.1: id and secret form-encoded first); the
answer's `access_token` is the token. Its expiry is the JWT's `exp` claim when the token is a
JWT, else now + `expires_in`. A refusal (4xx) is a ConfigError naming the endpoint, the OAuth
error and the settings to check — never the secret; an endpoint that does not answer is
Unavailable (retrying may cure it).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from bridge.kafka.token import Token
from bridge.model.errors import ConfigError, Unavailable

SETTINGS = "[kafka] oauth_client_id, [kafka] oauth_client_secret (and [kafka] oauth_scope)"


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT (unverified: the broker verifies), or None if it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


@dataclass(frozen=True)
class ClientCredentials:
    token_url: str
    client_id: str
    client_secret: str
    scope: str | None
    timeout_s: float = 10.0

    def _request(self) -> urllib.request.Request:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        pair = f"{urllib.parse.quote_plus(self.client_id)}:" + urllib.parse.quote_plus(
            self.client_secret
        )
        return urllib.request.Request(
            self.token_url,
            data=urllib.parse.urlencode(form).encode(),
            headers={
                "Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            method="POST",
        )

    def fetch(self) -> Token:
        where = f"the OAuth token endpoint {self.token_url}"
        try:
            with urllib.request.urlopen(self._request(), timeout=self.timeout_s) as answer:
                body = answer.read()
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500:
                raise ConfigError(
                    f"{where} refused client {self.client_id!r}: HTTP {exc.code} "
                    f"{_oauth_error(exc)}; check {SETTINGS}"
                ) from None
            raise Unavailable(f"{where} failed: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unavailable(f"{where} did not answer: {reason}") from None
        try:
            data = json.loads(body)
            value = data["access_token"]
            if not isinstance(value, str) or not value:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"{where} answered without an access_token (is [kafka] oauth_token_url the "
                "token endpoint?)"
            ) from None
        claims = jwt_claims(value) or {}
        if isinstance(claims.get("exp"), int | float):
            expires_at = float(claims["exp"])
        else:
            expires_at = time.time() + float(data.get("expires_in") or 300)
        principal = claims.get("sub")
        return Token(value, expires_at, principal if isinstance(principal, str) else self.client_id)


def _oauth_error(exc: urllib.error.HTTPError) -> str:
    """RFC 6749 section 5.2's error and description, when the body has them."""
    try:
        data = json.loads(exc.read() or b"{}")
    except ValueError:
        return str(exc.reason)
    if not isinstance(data, dict) or "error" not in data:
        return str(exc.reason)
    description = data.get("error_description")
    return f"{data['error']}" + (f" ({description})" if description else "")
