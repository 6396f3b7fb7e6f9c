"""A SASL_SSL listener (SCRAM-SHA-512 over TLS) for the test broker, as on MSK, Confluent Cloud
or a company cluster: a throwaway CA and a broker certificate for 127.0.0.1 made with
`cryptography`, one SCRAM user created when the log dir is formatted (StorageTool's
`--add-scram`). The same listener takes SASL/OAUTHBEARER too (kafka_oauth.py: Kafka's
unsecured-token validator), for the OAuth and MSK IAM tests. Inter-broker and controller
traffic stay on the plaintext listeners."""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ddb_bridge.services import kafka_oauth

LISTENER = "SASL_SSL"
MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class SaslSslListener:
    port: int
    ca_path: Path  # what clients trust (`ssl.ca.location`)
    keystore_path: Path  # the broker's PKCS#8 key and certificate chain, PEM
    username: str
    password: str

    @property
    def protocol(self) -> str:
        return LISTENER

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def server_properties(self) -> dict[str, str]:
        prefix = f"listener.name.{LISTENER.lower()}"
        return {
            "sasl.enabled.mechanisms": f"{MECHANISM},{kafka_oauth.MECHANISM}",
            # The server side of SCRAM: credentials come from the cluster metadata (format time).
            f"{prefix}.{MECHANISM.lower()}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            f"{prefix}.ssl.keystore.type": "PEM",
            f"{prefix}.ssl.keystore.location": str(self.keystore_path),
        } | kafka_oauth.server_properties(LISTENER.lower())

    def format_args(self) -> list[str]:
        return ["--add-scram", f"{MECHANISM}=[name={self.username},password={self.password}]"]

    def client_options(self, password: str | None = None) -> dict[str, str]:
        """librdkafka options (`[kafka.extra]`) for this listener."""
        return {
            "security.protocol": LISTENER,
            "sasl.mechanisms": MECHANISM,
            "sasl.username": self.username,
            "sasl.password": self.password if password is None else password,
            "ssl.ca.location": str(self.ca_path),
        }

    def tls_options(self) -> dict[str, str]:
        """librdkafka options (`[kafka.extra]`) for this listener when `[kafka] auth` brings
        the SASL mechanism (OAUTHBEARER): the protocol and the CA only."""
        return {"security.protocol": LISTENER, "ssl.ca.location": str(self.ca_path)}


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_listener(folder: Path, port: int, username: str = "alice") -> SaslSslListener:
    """Write a fresh CA and a broker certificate (for 127.0.0.1 and localhost) into `folder`."""
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=2))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("ddb-bridge test CA"))
        .issuer_name(_name("ddb-bridge test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(broker_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # Clients verify the host name (librdkafka's and Python's default): the address the
        # broker advertises must be in the certificate.
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    ca_path = folder / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    keystore = folder / "broker-keystore.pem"
    # Kafka's PEM keystore: an unencrypted PKCS#8 key, then the chain (leaf first).
    keystore.write_bytes(
        broker_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + broker_cert.public_bytes(serialization.Encoding.PEM)
        + ca_cert.public_bytes(serialization.Encoding.PEM)
    )
    return SaslSslListener(port, ca_path, keystore, username, secrets.token_urlsafe(18))
