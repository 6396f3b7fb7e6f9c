"""SASL/OAUTHBEARER for the test broker, and a small OAuth token endpoint to go with it.

The broker side is Kafka's own default: with no JWKS endpoint configured, an OAUTHBEARER
listener validates tokens with `OAuthBearerUnsecuredValidatorCallbackHandler`, which accepts
an *unsigned* JWT (`"alg": "none"`) that is well formed, has a `sub` and has not expired. It
checks the client's plumbing (the SASL exchange, the token reaching the broker, refresh before
`exp`, re-authentication when a session reaches its token's expiry), never a signature: that
is an identity provider's or AWS's part.

`TokenEndpoint` is the identity provider of the tests: an OAuth 2.0 token endpoint serving
the client-credentials grant (RFC 6749 section 4.4) for one client id and secret, answering
with unsigned JWTs of a chosen lifetime, and 401 `invalid_client` to anyone else. It counts
the tokens it grants, so a test can see a client come back for a new one before the last
expires.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MECHANISM = "OAUTHBEARER"


def server_properties(listener: str) -> dict[str, str]:
    """Broker properties enabling OAUTHBEARER on the listener named `listener` (lower case),
    validated by Kafka's unsecured-token handler (the default when no JWKS URL is set)."""
    prefix = f"listener.name.{listener}.{MECHANISM.lower()}"
    return {
        # Re-authentication (KIP-368) as MSK enforces it: a connection's session ends when its
        # token expires, so a client must bring a new token or reconnect with one.
        f"{prefix}.connections.max.reauth.ms": "3600000",
        # The broker logs in too (an unsecured token for itself) even though inter-broker
        # traffic stays on the plaintext listener: the login module needs a subject.
        f"{prefix}.sasl.jaas.config": (
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
            'unsecuredLoginStringClaim_sub="broker";'
        ),
    }


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def unsigned_jwt(subject: str, lifetime_s: float, scope: str | None = None) -> str:
    """A JWT with `"alg": "none"` and an empty signature, as the unsecured validator takes."""
    now = time.time()
    claims: dict[str, Any] = {"sub": subject, "iat": int(now), "exp": int(now + lifetime_s)}
    if scope:
        claims["scope"] = scope
    header = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64url(json.dumps(claims).encode())}."


class TokenEndpoint:
    """A client-credentials token endpoint on 127.0.0.1 (a context manager)."""

    def __init__(self, client_id: str = "ddb-bridge", lifetime_s: float = 3600.0) -> None:
        self.client_id = client_id
        self.client_secret = secrets.token_urlsafe(18)
        self.lifetime_s = lifetime_s
        self.granted = 0  # tokens issued
        self.refused = 0  # requests answered 401
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="token-endpoint", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/oauth2/token"

    def __enter__(self) -> TokenEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _client(self, headers: Any, form: dict[str, list[str]]) -> tuple[str, str] | None:
        """The client id and secret: HTTP Basic (RFC 6749 section 2.3.1) or the form's fields."""
        auth = headers.get("Authorization", "")
        if auth.startswith("Basic "):
            decoded = base64.b64decode(auth[6:]).decode()
            name, _, secret = decoded.partition(":")
            return urllib.parse.unquote_plus(name), urllib.parse.unquote_plus(secret)
        if "client_id" in form:
            return form["client_id"][0], form.get("client_secret", [""])[0]
        return None

    def _answer(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        form = urllib.parse.parse_qs(body.decode())
        if form.get("grant_type") != ["client_credentials"]:
            return 400, {"error": "unsupported_grant_type"}
        if self._client(headers, form) != (self.client_id, self.client_secret):
            with self._lock:
                self.refused += 1
            return 401, {"error": "invalid_client", "error_description": "bad client secret"}
        scope = form.get("scope", [None])[0]
        with self._lock:
            self.granted += 1
        return 200, {
            "access_token": unsigned_jwt(self.client_id, self.lifetime_s, scope),
            "token_type": "Bearer",
            "expires_in": int(self.lifetime_s),
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = endpoint._answer(self.headers, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the tests read the counters, not an access log on stderr

        return Handler
