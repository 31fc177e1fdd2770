"""A local WinRM + PSRP endpoint for tests, built from real components.

Real: the MIT KDC (krb5kdc), pyspnego as the SPNEGO/NTLM/Kerberos acceptor and for
WinRM message encryption, psrpcore's ServerRunspacePool/ServerPipeline for PSRP,
Python's ssl for TLS. Emulated: the PowerShell commands, the file system they see,
JEA visibility and the small script subset (see README.md, "Test peer").

Start it with ``python -m peer`` (PYTHONPATH=tests) or ``tests/peer/start.sh``.
"""
