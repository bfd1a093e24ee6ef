"""Optional TLS for every server port: a self-signed certificate made on first start, pinned by clients.

There is no CA between a backup server and its nodes, so the client trusts
exactly one certificate: the SHA-256 fingerprint of its DER form, which the
server prints when it starts (and ``QUERY STATUS`` shows).  The client's
context checks no chain and no host name; it compares the fingerprint after
the handshake and closes the connection on any difference.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import socket
import ssl
from pathlib import Path

CERT_FILE, KEY_FILE = "server-cert.pem", "server-key.pem"


def ensure_certificate(directory: Path, common_name: str = "serverfree server") -> tuple[Path, Path]:
    """(cert, key) in ``directory``; made (EC P-256, ten years) when absent."""
    cert, key = directory / CERT_FILE, directory / KEY_FILE
    if cert.exists() and key.exists():
        return cert, key
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(private.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(start + dt.timedelta(days=3650))
                   .sign(private, hashes.SHA256()))
    key.touch(mode=0o600)
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key


def fingerprint_of_der(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def fingerprint(cert_file: Path) -> str:
    return fingerprint_of_der(ssl.PEM_cert_to_DER_cert(cert_file.read_text()))


def server_context(directory: Path) -> ssl.SSLContext:
    cert, key = ensure_certificate(directory)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def normalise_pin(pin: str) -> str:
    hexdigits = pin.replace(":", "").strip().lower()
    if len(hexdigits) != 64 or any(c not in "0123456789abcdef" for c in hexdigits):
        raise ValueError(f"TLS fingerprint {pin!r} is not a SHA-256 hex digest (64 hex digits, colons allowed)")
    return hexdigits


def wrap_client(sock: socket.socket, pin: str) -> ssl.SSLSocket:
    """TLS over ``sock``, accepted only when the server's certificate has fingerprint ``pin``."""
    want = normalise_pin(pin)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # trust is the pin below, not a CA
    tls = ctx.wrap_socket(sock)
    got = fingerprint_of_der(tls.getpeercert(binary_form=True) or b"")
    if got != want:
        tls.close()
        raise ConnectionError(f"server certificate fingerprint {got} is not the pinned {want}; "
                              "refusing to talk to it")
    return tls
