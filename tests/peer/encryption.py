"""WinRM message encryption framing (MS-WSMV 2.2.9.1): multipart/encrypted bodies.

The cryptography itself is pyspnego's ``wrap_winrm``/``unwrap_winrm``; this module only
splits and builds the MIME framing around it.
"""

import re
import struct
import typing

BOUNDARY = b"--Encrypted Boundary"
CONTENT_TYPE_PREFIX = "multipart/encrypted"


class EncryptionError(Exception):
    """The encrypted body is malformed or does not decrypt."""


def is_encrypted(content_type: str) -> bool:
    return content_type.lower().startswith(CONTENT_TYPE_PREFIX) or content_type.lower().startswith(
        "multipart/x-multi-encrypted"
    )


CREDSSP = "application/HTTP-CredSSP-session-encrypted"
# WinRM seals CredSSP messages in parts of at most 16 KiB (one TLS record each).
CREDSSP_PART = 16384


def content_type(protocol: str, length: int = 0) -> str:
    kind = "multipart/x-multi-encrypted" if protocol == CREDSSP and length > CREDSSP_PART else "multipart/encrypted"
    return f'{kind};protocol="{protocol}";boundary="Encrypted Boundary"'


def protocol_of(content_type_value: str) -> typing.Optional[str]:
    m = re.search(r'protocol="([^"]+)"', content_type_value)
    return m.group(1) if m else None


def unwrap(
    body: bytes,
    expected_protocol: str,
    unwrap_fn: typing.Callable[[bytes, bytes], bytes],
) -> bytes:
    """Decrypts every part pair of ``body``; checks each length against OriginalContent."""
    out = bytearray()
    pos = 0
    while True:
        if body.startswith(BOUNDARY + b"--", pos):
            break
        if not body.startswith(BOUNDARY + b"\r\n", pos):
            raise EncryptionError(f"expected '--Encrypted Boundary' at byte {pos}")
        pos += len(BOUNDARY) + 2
        header_end = body.find(BOUNDARY + b"\r\n", pos)
        if header_end < 0:
            raise EncryptionError("missing second MIME part")
        headers = body[pos:header_end].decode("ascii", errors="replace")
        m = re.search(r"Content-Type:\s*([^\r\n]+)", headers, re.I)
        if not m or m.group(1).strip().lower() != expected_protocol.lower():
            got = m.group(1).strip() if m else "none"
            raise EncryptionError(f"encrypted part has Content-Type {got!r}, expected {expected_protocol!r}")
        m = re.search(r"Length=(\d+)", headers)
        if not m:
            raise EncryptionError("OriginalContent has no Length")
        length = int(m.group(1))
        pos = header_end + len(BOUNDARY) + 2
        line_end = body.find(b"\r\n", pos)
        if line_end < 0 or b"application/octet-stream" not in body[pos:line_end]:
            raise EncryptionError("second MIME part is not application/octet-stream")
        pos = line_end + 2
        if len(body) < pos + 4:
            raise EncryptionError("truncated encrypted part")
        (header_len,) = struct.unpack("<I", body[pos : pos + 4])
        pos += 4
        header = body[pos : pos + header_len]
        pos += header_len
        # The sealed data has exactly Length bytes (plaintext + padding) for NTLM and
        # Kerberos; the next boundary follows it. CredSSP's TLS records are longer than the
        # plaintext: they run to the next boundary.
        if expected_protocol == CREDSSP:
            end = body.find(BOUNDARY, pos)
            if end < 0:
                raise EncryptionError("missing boundary after the encrypted part")
            data = body[pos:end]
            pos = end
            if len(header) != header_len:
                raise EncryptionError("truncated encrypted part")
        else:
            data = body[pos : pos + length]
            pos += length
            if len(header) != header_len or len(data) != length:
                raise EncryptionError("truncated encrypted part")
        try:
            plain = unwrap_fn(header, data)
        except Exception as e:
            raise EncryptionError(f"decryption failed: {type(e).__name__}: {e}") from None
        # Length counts padding (RC4 Kerberos) that unwrap removes, so it may be larger.
        if expected_protocol == CREDSSP and len(plain) != length:
            raise EncryptionError(f"decrypted {len(plain)} bytes but OriginalContent Length is {length}")
        if len(plain) > length:
            raise EncryptionError(f"decrypted {len(plain)} bytes but OriginalContent Length is {length}")
        out += plain
    return bytes(out)


def wrap(
    plain: bytes, protocol: str, wrap_fn: typing.Callable[[bytes], typing.Tuple[bytes, typing.Any, int]]
) -> typing.List[bytes]:
    """The multipart/encrypted body, as parts to be joined by the sender (the
    sealed data is large; it is copied once, into the HTTP response). CredSSP messages are
    sealed in 16 KiB parts, as WinRM does."""
    if protocol == CREDSSP and len(plain) > CREDSSP_PART:
        out: typing.List[bytes] = []
        for at in range(0, len(plain), CREDSSP_PART):
            out.extend(wrap(plain[at : at + CREDSSP_PART], protocol, wrap_fn)[:-1])
        out.append(BOUNDARY + b"--\r\n")
        return out
    header, data, padding = wrap_fn(plain)
    return [
        b"".join(
            [
                BOUNDARY,
                b"\r\n\tContent-Type: ",
                protocol.encode(),
                b"\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=",
                str(len(plain) + padding).encode(),
                b"\r\n",
                BOUNDARY,
                b"\r\n\tContent-Type: application/octet-stream\r\n",
                struct.pack("<I", len(header)),
                header,
            ]
        ),
        data,
        BOUNDARY + b"--\r\n",
    ]
