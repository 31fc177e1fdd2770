//! `psrp_client._native`: psrp's Rust client (`psrp_core::client`) for
//! Python. The public API is the `psrp_client` package around it; this
//! module holds the connection, the pipelines, the conversion of values
//! and records, and the runtime they run on.

mod convert;
mod errors;
mod host;
mod invocation;
mod pool;
mod records;
mod runtime;
mod settings;

use pyo3::prelude::*;

/// The native half of `psrp_client`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<settings::Settings>()?;
    m.add_class::<pool::Pool>()?;
    m.add_class::<invocation::Invocation>()?;
    m.add_class::<records::Event>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
