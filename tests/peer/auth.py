"""HTTP authentication as WinRM does it: Basic, Negotiate (SPNEGO: Kerberos or NTLM),
Kerberos and CredSSP, through pyspnego's acceptors, with channel binding enforcement on HTTPS.

One ``ConnectionAuth`` lives per TCP connection, like the security context on Windows.
"""

import base64
import binascii
import struct
import typing

import spnego
from spnego.channel_bindings import GssChannelBindings

SERVICE = "HTTP"
HOST = "localhost"

# Scheme word (as sent by the client, case-insensitive) -> pyspnego protocol. WinRM
# offers Negotiate (SPNEGO: Kerberos or NTLM, raw NTLM tokens too) and Kerberos.
SPNEGO_SCHEMES = {"negotiate": "negotiate", "kerberos": "kerberos", "credssp": "credssp"}

# pyspnego's CredSSP acceptor (spnego._credssp.CredSSPProxy): TLS inside the HTTP headers, its
# Negotiate acceptor (NTLM from NTLM_USER_FILE, or Kerberos) inside TLS, then the client's
# TSCredentials. Its inner TLS uses the peer's own server certificate and key (RSA, as WinRM's
# CredSSP certificate), one SSLContext per TLS ceiling.
_CREDSSP_TLS: typing.Dict[str, typing.Any] = {}


def credssp_tls_context(realm_info: typing.Dict[str, typing.Any], tls_max: typing.Optional[str]) -> typing.Any:
    import ssl

    from spnego.tls import default_tls_context, get_certificate_public_key

    key = tls_max or "default"
    if key not in _CREDSSP_TLS:
        ctx = default_tls_context(usage="accept")  # TLS 1.2 minimum, as pyspnego sets it
        ctx.context.load_cert_chain(realm_info["server_cert"], realm_info["server_key"])
        if tls_max == "1.2":
            ctx.context.maximum_version = ssl.TLSVersion.TLSv1_2
        with open(realm_info["server_cert"], encoding="ascii") as f:
            ctx.public_key = get_certificate_public_key(ssl.PEM_cert_to_DER_cert(f.read()))
        _CREDSSP_TLS[key] = ctx
    return _CREDSSP_TLS[key]


def break_credssp_binding() -> None:
    """Makes pyspnego's CredSSP acceptor answer with a server-to-client public key binding that
    does not match its certificate (one bit flipped), as a man in the middle terminating the inner
    TLS with its own key would: the client must stop before it sends the credentials."""
    import spnego._credssp

    real = spnego._credssp._get_pub_key_auth

    def flipped(pub_key: bytes, usage: str, nonce: typing.Optional[bytes] = None) -> bytes:
        value = real(pub_key, usage, nonce=nonce)
        return value if usage == "initiate" else bytes([value[0] ^ 1]) + value[1:]

    spnego._credssp._get_pub_key_auth = flipped


def set_credssp_version(version: int) -> None:
    """Makes pyspnego's CredSSP acceptor speak ``version`` (2 to 6) instead of 6: it answers
    with it and uses min(client's, it), as an older Windows would (2-4: the raw public key
    binding; 5-6: the nonce and hash binding; 2 and 5: no errorCode)."""
    import spnego._credssp

    spnego._credssp._CREDSSP_VERSION = version

# MS-NLMP 2.2.2.1: AV_PAIR id of MsvAvChannelBindings.
_AV_CHANNEL_BINDINGS = 0x000A
_AV_EOL = 0x0000


class AuthFailed(Exception):
    """The client's credentials or token were refused (answered with 401)."""


def _gssapi_channel_bound(ctx: typing.Any) -> typing.Optional[bool]:
    """Whether MIT GSSAPI verified the initiator's channel bindings (GSS_C_CHANNEL_BOUND_FLAG).

    None when the flag cannot be read (not a GSSAPI Kerberos context).
    """
    import gssapi

    inner = ctx
    if type(inner).__name__ == "NegotiateProxy":
        inner = inner._context
    sec_ctx = getattr(inner, "_context", None)
    if not isinstance(sec_ctx, gssapi.SecurityContext):
        return None
    return gssapi.RequirementFlag.channel_bound in sec_ctx.actual_flags


def _bad_bindings(e: BaseException) -> bool:
    """Whether ``e`` or an exception it was raised from is a channel bindings mismatch
    (pyspnego's BadBindingsError for NTLM; its GSSAPI wrapper loses Kerberos's
    GSS_S_BAD_BINDINGS, which then shows as an AttributeError)."""
    seen: typing.Optional[BaseException] = e
    for _ in range(8):
        if seen is None:
            return False
        if "bindings" in type(seen).__name__.lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def ntlm_channel_bindings_hash(token: bytes) -> typing.Optional[bytes]:
    """The MsvAvChannelBindings value in an NTLM AUTHENTICATE message inside ``token``.

    ``token`` is raw NTLM or SPNEGO carrying NTLM; the NTLM message is contiguous in both
    and its field offsets are relative to its own start. Returns None when the client sent
    no channel bindings AV pair (or no NTLMv2 AUTHENTICATE message).
    """
    start = token.find(b"NTLMSSP\x00\x03\x00\x00\x00")
    if start < 0:
        return None
    msg = token[start:]
    if len(msg) < 28:
        return None
    nt_len, _nt_max, nt_offset = struct.unpack("<HHI", msg[20:28])
    nt = msg[nt_offset : nt_offset + nt_len]
    # NTLMv2 response: NTProofStr (16) + client challenge header (28) + AV pairs.
    pos = 16 + 28
    while pos + 4 <= len(nt):
        av_id, av_len = struct.unpack("<HH", nt[pos : pos + 4])
        if av_id == _AV_EOL:
            break
        if av_id == _AV_CHANNEL_BINDINGS:
            return nt[pos + 4 : pos + 4 + av_len]
        pos += 4 + av_len
    return None


def _gssapi_delegated_principal(ctx: typing.Any) -> typing.Optional[str]:
    """The principal of the credentials the initiator delegated (its forwarded TGT), if any.

    MIT GSSAPI hands an acceptor the forwarded TGT as delegated credentials when the initiator
    set GSS_C_DELEG_FLAG and could forward its ticket; python-gssapi exposes them as
    ``SecurityContext.delegated_creds``.
    """
    import gssapi

    inner = ctx
    if type(inner).__name__ == "NegotiateProxy":
        inner = inner._context
    sec_ctx = getattr(inner, "_context", None)
    if not isinstance(sec_ctx, gssapi.SecurityContext):
        return None
    creds = getattr(sec_ctx, "delegated_creds", None)
    if creds is None or gssapi.RequirementFlag.delegate_to_peer not in sec_ctx.actual_flags:
        return None
    return str(creds.name)


# WinRM certificate authentication (MS-WSMV 2.2.9.2.3 / WS-Management secprofile): the client
# proves the certificate in the TLS handshake and names this profile in the Authorization header.
CERTIFICATE_SCHEME = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual"


def map_certificate(der: typing.Optional[bytes], realm_info: typing.Dict[str, typing.Any]) -> typing.Tuple[str, str]:
    """The account a verified client certificate maps to, and the UPN it was mapped by.

    Like WinRM's certificate mapping (``winrm/config/service/certmapping``, whose Subject is the
    UPN of the certificate's subjectAltName otherName): the UPN must name the realm's user. The
    TLS layer has already checked the chain against the peer's CA.
    """
    from cryptography import x509

    from peer import certs

    if not der:
        raise AuthFailed("certificate authentication without a client certificate in the TLS handshake")
    upn = certs.upn_of(x509.load_der_x509_certificate(der))
    if upn is None:
        raise AuthFailed("the client certificate has no UPN in its subjectAltName to map it by")
    if upn.lower() != realm_info["principal"].lower():
        raise AuthFailed(f"no account is mapped to the client certificate's UPN {upn!r}")
    return realm_info["user"], upn


class ConnectionAuth:
    """Authentication state of one TCP connection.

    ``cbt``: the tls-server-end-point binding data on HTTPS (None on HTTP).
    ``strict_cbt``: refuse NTLM/Kerberos/Negotiate without matching channel bindings
    (Windows CbtHardeningLevel=Strict).
    """

    def __init__(self, realm_info: typing.Dict[str, typing.Any], cbt: typing.Optional[bytes], strict_cbt: bool,
                 ntlm_only: bool = False, credssp_tls: typing.Optional[str] = None):
        self.realm_info = realm_info
        self.credssp_tls = credssp_tls
        self.ntlm_only = ntlm_only
        self.cbt = cbt
        self.strict_cbt = strict_cbt and cbt is not None
        self.ctx: typing.Any = None
        self.scheme: typing.Optional[str] = None  # scheme word as the client sent it
        self.complete = False
        self.principal: typing.Optional[str] = None
        self.negotiated: typing.Optional[str] = None  # "ntlm" / "kerberos" / "basic"
        self.ntlm_cbt_hash: typing.Optional[bytes] = None
        self.delegated: typing.Optional[str] = None  # principal of delegated (forwarded) credentials
        self.credssp_version: typing.Optional[int] = None
        self.credssp_error: typing.Optional[str] = None  # the refusal the last CredSSP token carried

    def reset(self) -> None:
        self.ctx = None
        self.scheme = None
        self.complete = False
        self.principal = None
        self.negotiated = None
        self.ntlm_cbt_hash = None
        self.delegated = None
        self.credssp_version = None
        self.credssp_error = None

    @property
    def encryption_protocol(self) -> str:
        """MIME protocol of WinRM message encryption for this context (MS-WSMV 2.2.9.1)."""
        if (self.scheme or "").lower() == "kerberos":
            return "application/HTTP-Kerberos-session-encrypted"
        if (self.scheme or "").lower() == "credssp":
            return "application/HTTP-CredSSP-session-encrypted"
        return "application/HTTP-SPNEGO-session-encrypted"

    def check_basic(self, value: str) -> str:
        """Validates a Basic credential; returns the user name."""
        try:
            user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError) as e:
            raise AuthFailed(f"malformed Basic credentials: {e}") from None
        accepted = [u.lower() for u in self.realm_info["ntlm"]["accepted_usernames"]]
        if user.lower() not in accepted or password != self.realm_info["password"]:
            raise AuthFailed(f"wrong user name or password for Basic user {user!r}")
        return user

    def step(self, scheme: str, token_b64: str) -> typing.Optional[bytes]:
        """Feeds one Negotiate/Kerberos/NTLM token; returns the token to send back (or None).

        Raises AuthFailed when the token or the credentials are refused; the context is
        then discarded so that the client can start again on the same connection.
        """
        protocol = SPNEGO_SCHEMES[scheme.lower()]
        try:
            token = base64.b64decode(token_b64, validate=True)
        except binascii.Error as e:
            self.reset()
            raise AuthFailed(f"malformed {scheme} token: {e}") from None
        if self.ctx is None or self.complete or self.scheme != scheme:
            # A new handshake on an authenticated connection replaces the old context.
            self.reset()
            bindings = GssChannelBindings(application_data=self.cbt) if self.cbt and self.strict_cbt else None
            extra: typing.Dict[str, typing.Any] = {}
            if protocol == "credssp":
                # CredSSP binds the inner TLS through pubKeyAuth, not the outer channel.
                bindings = None
                extra["credssp_tls_context"] = credssp_tls_context(self.realm_info, self.credssp_tls)
            try:
                self.ctx = spnego.server(
                    hostname=HOST,
                    service=SERVICE,
                    protocol=protocol,
                    channel_bindings=bindings,
                    **extra,
                )
            except Exception as e:  # no acceptor credentials: refused, as a server would
                self.reset()
                raise AuthFailed(f"{scheme} acceptor unavailable: {type(e).__name__}: {e}") from None
            self.scheme = scheme
        if b"NTLMSSP\x00\x03\x00\x00\x00" in token:
            self.ntlm_cbt_hash = ntlm_channel_bindings_hash(token)
        try:
            out = self.ctx.step(token)
        except Exception as e:  # pyspnego raises many types; all mean "refused"
            self.reset()
            if self.strict_cbt and _bad_bindings(e):
                raise AuthFailed(f"{scheme} token refused: the channel bindings do not match this server's "
                                 f"certificate ({type(e).__name__})") from None
            raise AuthFailed(f"{scheme} token refused: {type(e).__name__}: {e}") from None
        if protocol == "credssp":
            return self._credssp_step_done(out)
        if self.ctx.complete:
            self.negotiated = self.ctx.negotiated_protocol
            if self.ntlm_only and self.negotiated != "ntlm":
                # Like a Windows host whose account has no usable key for the SPN: only NTLM works.
                self.reset()
                raise AuthFailed("Kerberos token refused: this server accepts only NTLM (--ntlm-only)")
            if self.strict_cbt:
                self._enforce_cbt()
            self.complete = True
            self.principal = self.ctx.client_principal
            if self.negotiated == "kerberos":
                self.delegated = _gssapi_delegated_principal(self.ctx)
        return out

    def _credssp_step_done(self, out: typing.Optional[bytes]) -> typing.Optional[bytes]:
        """After a CredSSP step: a refusal the acceptor reported (an errorCode TSRequest for the
        client, or the end of the exchange for versions 2 and 5, which have no errorCode), or the
        delegated credentials, checked against the realm's user as Windows would log them on."""
        ctx = self.ctx
        self.credssp_version = ctx.get_extra_info("protocol_version")
        if ctx.get_extra_info("auth_stage") == "Authentication failure":
            self.credssp_error = "the inner authentication failed (errorCode sent to the client)"
            return out
        if not ctx.complete:
            if out is None and ctx._step_gen is not None and ctx.get_extra_info("auth_stage") != "TLS Handshake":
                # The acceptor's generator ended without completing: a refusal without errorCode.
                self.reset()
                raise AuthFailed("CredSSP inner authentication refused (no errorCode in this CredSSP version)")
            return out
        creds = ctx.get_extra_info("client_credential")
        if creds is None or not hasattr(creds, "password"):
            self.reset()
            raise AuthFailed("CredSSP completed without password credentials (TSPasswordCreds)")
        user = f"{creds.domain_name}\\{creds.username}" if creds.domain_name else creds.username
        accepted = [u.lower() for u in self.realm_info["ntlm"]["accepted_usernames"]]
        if user.lower() not in accepted or creds.password != self.realm_info["password"]:
            self.reset()
            raise AuthFailed(f"CredSSP delegated credentials of {user!r} do not log on (wrong user or password)")
        self.negotiated = ctx.negotiated_protocol
        self.complete = True
        self.principal = ctx.client_principal or user
        self.delegated = user
        return out

    def _enforce_cbt(self) -> None:
        if self.negotiated == "ntlm":
            # pyspnego accepts an all-zero hash ("no bindings known"); Strict does not.
            if not self.ntlm_cbt_hash or self.ntlm_cbt_hash == b"\x00" * 16:
                self.reset()
                raise AuthFailed("NTLM authentication without channel binding token (CbtHardeningLevel=Strict)")
        elif self.negotiated == "kerberos":
            bound = _gssapi_channel_bound(self.ctx)
            if bound is False:
                self.reset()
                raise AuthFailed("Kerberos authentication without channel bindings (CbtHardeningLevel=Strict)")

    def wrap(self, data: bytes) -> typing.Tuple[bytes, bytes, int]:
        res = self.ctx.wrap_winrm(data)
        return res.header, res.data, res.padding_length

    def unwrap(self, header: bytes, data: bytes) -> bytes:
        return self.ctx.unwrap_winrm(header, data)
