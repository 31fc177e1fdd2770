"""Makes certificates with various signature algorithms (python
cryptography) into the directory argv[1] and prints, per certificate, the
DER file path and pypsrp's tls-server-end-point application data in hex:
the independent reference for the wsman crate's channel binding hash."""

import datetime
import os
import subprocess
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from pypsrp.negotiate import HTTPNegotiateAuth

out = sys.argv[1]
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ec_key = ec.generate_private_key(ec.SECP384R1())
ed_key = ed25519.Ed25519PrivateKey.generate()
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
now = datetime.datetime.now(datetime.timezone.utc)


def make(label, key, algorithm, **kw):
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, algorithm, **kw)
    )
    der = cert.public_bytes(Encoding.DER)
    path = os.path.join(out, label + ".der")
    with open(path, "wb") as f:
        f.write(der)
    report(label, path, der)


def report(label, path, der):
    app = b"tls-server-end-point:" + HTTPNegotiateAuth._get_certificate_hash(der)
    print(label, path, app.hex())


make("rsa-sha256", rsa_key, hashes.SHA256())
make("rsa-sha384", rsa_key, hashes.SHA384())
make("rsa-sha512", rsa_key, hashes.SHA512())
# cryptography no longer signs with SHA-1 or MD5: the openssl command does.
for digest in ("sha1", "md5"):
    path = os.path.join(out, f"rsa-{digest}.der")
    subprocess.run(
        ["openssl", "req", "-x509", f"-{digest}", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-days", "1", "-outform", "DER", "-out", path, "-keyout", os.path.join(out, f"{digest}.key")],
        check=True, capture_output=True,
    )
    with open(path, "rb") as f:
        report(f"rsa-{digest}", path, f.read())
make("ecdsa-sha256", ec_key, hashes.SHA256())
make("ecdsa-sha384", ec_key, hashes.SHA384())
make("ecdsa-sha512", ec_key, hashes.SHA512())
make(
    "rsa-pss-sha384",
    rsa_key,
    hashes.SHA384(),
    rsa_padding=padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48),
)
make("ed25519", ed_key, None)
