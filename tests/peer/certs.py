"""Test PKI: a throwaway CA, the peer's server certificate and two bad ones, and client
certificates for WinRM certificate authentication.

The good certificate names ``localhost``, 127.0.0.1 and ::1 and is signed by the CA that
clients trust through ``ca_file``. The bad ones let a client prove it refuses them: one is
self-signed (not from the CA), the other comes from the CA but names another host.
"""

import datetime
import hashlib
import ipaddress
import os
import typing

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

WRONG_HOST = "wrong-host.peer.invalid"


def _key() -> rsa.RSAPrivateKey:
    # RSA like a Windows listener certificate; 2048 bits keeps start-up fast.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "psrp test peer"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _builder(subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey) -> x509.CertificateBuilder:
    """A certificate for `key`, valid from yesterday for 30 days."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
    )


def _key_usage(**allowed: bool) -> x509.KeyUsage:
    """A KeyUsage extension with only the named usages allowed."""
    flags = dict.fromkeys(
        (
            "digital_signature",
            "key_encipherment",
            "content_commitment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    flags.update(allowed)
    return x509.KeyUsage(**flags)


def _leaf(
    subject_cn: str,
    sans: typing.List[x509.GeneralName],
    issuer_name: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    key: rsa.RSAPrivateKey,
) -> x509.Certificate:
    return (
        _builder(_name(subject_cn), issuer_name, key)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_key_usage(digital_signature=True, key_encipherment=True), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def create_pki(directory: str) -> typing.Dict[str, str]:
    """Writes the CA and the three server certificates; returns their paths."""
    ca_key = _key()
    ca_name = _name("psrp test peer CA")
    ca = (
        _builder(ca_name, ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    good_sans: typing.List[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    paths = {"ca_file": os.path.join(directory, "ca.pem")}
    _write(paths["ca_file"], ca.public_bytes(serialization.Encoding.PEM))

    untrusted_key = _key()
    untrusted_name = _name("localhost")
    specs = {
        "server": ("localhost", good_sans, ca_name, ca_key, _key()),
        "untrusted": ("localhost", good_sans, untrusted_name, untrusted_key, untrusted_key),
        "wronghost": (WRONG_HOST, [x509.DNSName(WRONG_HOST)], ca_name, ca_key, _key()),
    }
    paths["ca_key"] = os.path.join(directory, "ca.key")
    _write(paths["ca_key"], _pem_key(ca_key))
    for label, (cn, sans, issuer_name, issuer_key, key) in specs.items():
        cert = _leaf(cn, sans, issuer_name, issuer_key, key)
        paths[f"{label}_cert"] = os.path.join(directory, f"{label}.pem")
        paths[f"{label}_key"] = os.path.join(directory, f"{label}.key")
        _write(paths[f"{label}_cert"], cert.public_bytes(serialization.Encoding.PEM))
        _write(paths[f"{label}_key"], _pem_key(key))
    return paths


# The UPN otherName of a subjectAltName (szOID_NT_PRINCIPAL_NAME), which WinRM's certificate
# mapping matches against its mapped accounts.
UPN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")


def _der_utf8(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) >= 0x80:
        raise ValueError("UPN too long for this test PKI")
    return bytes([0x0C, len(data)]) + data


def upn_of(cert: x509.Certificate) -> typing.Optional[str]:
    """The UPN in the certificate's subjectAltName otherName, if any (a DER UTF8String)."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for general in sans:
        if isinstance(general, x509.OtherName) and general.type_id == UPN_OID:
            raw = general.value
            if len(raw) >= 2 and raw[0] == 0x0C and raw[1] < 0x80 and len(raw) == 2 + raw[1]:
                return raw[2:].decode("utf-8", errors="replace")
    return None


def _client_cert(upn: str, issuer_name: x509.Name, issuer_key: typing.Any, key: typing.Any) -> x509.Certificate:
    return (
        _builder(_name(upn.split("@", 1)[0]), issuer_name, key)
        .add_extension(x509.SubjectAlternativeName([x509.OtherName(UPN_OID, _der_utf8(upn))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def create_client_pki(directory: str, ca_cert_path: str, ca_key_path: str, upn: str, unmapped_upn: str,
                      key_password: str) -> typing.Dict[str, str]:
    """Client certificates for certificate authentication (EC P-256 keys: quick to make):

    - ``client``: for ``upn``, from the peer's CA (the one the HTTPS listener trusts for client
      certificates); its key also as encrypted PKCS#8 (``client_key_encrypted``, ``key_password``)
    - ``unmapped``: from the same CA for ``unmapped_upn``, a UPN mapped to no account
    - ``foreign``: for ``upn``, from another CA the peer does not trust
    """
    with open(ca_cert_path, "rb") as f:
        ca_name = x509.load_pem_x509_certificate(f.read()).subject
    with open(ca_key_path, "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), password=None)
    foreign_ca_key = ec.generate_private_key(ec.SECP256R1())
    foreign_ca_name = _name("another CA")
    paths: typing.Dict[str, str] = {}
    for label, (who, issuer_name, issuer_key) in {
        "client": (upn, ca_name, ca_key),
        "unmapped": (unmapped_upn, ca_name, ca_key),
        "foreign": (upn, foreign_ca_name, foreign_ca_key),
    }.items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _client_cert(who, issuer_name, issuer_key, key)
        paths[f"{label}_cert"] = os.path.join(directory, f"client-{label}.pem")
        paths[f"{label}_key"] = os.path.join(directory, f"client-{label}.key")
        _write(paths[f"{label}_cert"], cert.public_bytes(serialization.Encoding.PEM))
        _write(paths[f"{label}_key"], _pem_key(key))
        if label == "client":
            paths["client_key_encrypted"] = os.path.join(directory, "client-encrypted.key")
            _write(paths["client_key_encrypted"], key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(key_password.encode())))
    paths["key_password"] = key_password
    paths["upn"] = upn
    paths["unmapped_upn"] = unmapped_upn
    return paths


def tls_server_end_point(cert_pem_path: str) -> bytes:
    """RFC 5929 tls-server-end-point channel binding data for a certificate."""
    with open(cert_pem_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    der = cert.public_bytes(serialization.Encoding.DER)
    algorithm = cert.signature_hash_algorithm
    # RFC 5929 4.1: MD5 and SHA-1 signatures are hashed with SHA-256.
    name = "sha256" if algorithm is None or algorithm.name in ("md5", "sha1") else algorithm.name
    return b"tls-server-end-point:" + hashlib.new(name, der).digest()
