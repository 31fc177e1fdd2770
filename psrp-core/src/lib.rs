//! PowerShell Remoting Protocol (MS-PSRP) core.
//!
//! - [`clixml`]: the CLIXML value model, decoder, encoder and JSON conversion.

#![warn(missing_docs)]

pub mod clixml;
