//! PowerShell Remoting Protocol (MS-PSRP) core.
//!
//! - [`clixml`]: the CLIXML value model, decoder, encoder and JSON conversion.
//! - [`fragment`]: splitting PSRP messages into fragments and reassembling them.
//! - [`message`]: the PSRP message header, message types and typed messages.
//! - [`command`]: commands, pipelines and the CREATE_PIPELINE message.
//! - [`host`]: the client host as PSRP sees it: HostInfo, host calls and responses.
//! - [`pool`] and [`pipeline`]: the sans-IO runspace pool and pipeline state machines.
//! - `client` (feature `client`, default): the async client on tokio that
//!   drives them over WS-Management.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "client")]
pub mod client;
pub mod clixml;
pub mod command;
pub mod fragment;
pub mod host;
pub mod message;
pub mod pipeline;
pub mod pool;
pub mod prompt;
pub mod session_key;

// The README's Rust examples are compiled as doc tests.
#[cfg(all(doctest, feature = "client"))]
#[doc = include_str!("../../README.md")]
mod readme_examples {}
