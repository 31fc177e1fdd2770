//! PSRP messages (MS-PSRP 2.2.1-2.2.3): the header with its message types,
//! and typed messages parsed from (and encoded to) CLIXML.

mod header;

pub use header::{
    guid_from_dotnet_bytes, guid_to_dotnet_bytes, Destination, HeaderError, MessageType,
    RawMessage, MESSAGE_HEADER_LEN,
};
