//! WS-Management client for WinRM. Knows nothing of PSRP.

#![warn(missing_docs)]
