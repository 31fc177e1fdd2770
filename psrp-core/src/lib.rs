//! PowerShell Remoting Protocol (MS-PSRP) core.
//!
//! - [`clixml`]: the CLIXML value model, decoder, encoder and JSON conversion.
//! - [`fragment`]: splitting PSRP messages into fragments and reassembling them.
//! - [`message`]: the PSRP message header, message types and typed messages.

#![warn(missing_docs)]

pub mod clixml;
pub mod fragment;
pub mod message;
