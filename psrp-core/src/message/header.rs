//! The PSRP message header (MS-PSRP 2.2.1) and the message type codes.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | Destination, u32 little-endian: 1 client, 2 server |
//! | 4 | 4 | MessageType, u32 little-endian |
//! | 8 | 16 | RPID: runspace pool GUID in .NET byte order |
//! | 24 | 16 | PID: pipeline GUID in .NET byte order, zero for pool messages |
//! | 40 | n | data: UTF-8 CLIXML, optionally after a UTF-8 BOM |
//!
//! .NET byte order (`Guid.ToByteArray`) stores the first three GUID fields
//! little-endian and the last eight bytes as written:
//! `F5D64B74-8E54-4B03-A4D1-1002D9765852` is `74 4B D6 F5 54 8E 03 4B A4 D1 10 02 D9 76 58 52`.

use uuid::Uuid;

/// Length of the message header in bytes.
pub const MESSAGE_HEADER_LEN: usize = 40;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Which side a message is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Destination {
    /// Sent by the server to the client (1).
    Client,
    /// Sent by the client to the server (2).
    Server,
}

impl Destination {
    /// The wire value.
    pub fn code(self) -> u32 {
        match self {
            Destination::Client => 1,
            Destination::Server => 2,
        }
    }

    /// The destination for a wire value.
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Destination::Client),
            2 => Some(Destination::Server),
            _ => None,
        }
    }
}

macro_rules! message_types {
    ($( $(#[$doc:meta])* $name:ident = $code:literal, $wire:literal; )*) => {
        /// Every PSRP message type (MS-PSRP 2.2.1).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum MessageType {
            $( $(#[$doc])* $name, )*
        }

        impl MessageType {
            /// All message types, in code order of the specification table.
            pub const ALL: &'static [MessageType] = &[$(MessageType::$name),*];

            /// The wire value.
            pub fn code(self) -> u32 {
                match self {
                    $( MessageType::$name => $code, )*
                }
            }

            /// The message type for a wire value.
            pub fn from_code(code: u32) -> Option<Self> {
                match code {
                    $( $code => Some(MessageType::$name), )*
                    _ => None,
                }
            }

            /// The name MS-PSRP uses, e.g. `PIPELINE_OUTPUT`.
            pub fn spec_name(self) -> &'static str {
                match self {
                    $( MessageType::$name => $wire, )*
                }
            }
        }
    };
}

message_types! {
    /// SESSION_CAPABILITY, both directions.
    SessionCapability = 0x0001_0002, "SESSION_CAPABILITY";
    /// INIT_RUNSPACEPOOL, client to server.
    InitRunspacePool = 0x0001_0004, "INIT_RUNSPACEPOOL";
    /// PUBLIC_KEY, client to server.
    PublicKey = 0x0001_0005, "PUBLIC_KEY";
    /// ENCRYPTED_SESSION_KEY, server to client.
    EncryptedSessionKey = 0x0001_0006, "ENCRYPTED_SESSION_KEY";
    /// PUBLIC_KEY_REQUEST, server to client.
    PublicKeyRequest = 0x0001_0007, "PUBLIC_KEY_REQUEST";
    /// CONNECT_RUNSPACEPOOL, client to server.
    ConnectRunspacePool = 0x0001_0008, "CONNECT_RUNSPACEPOOL";
    /// SET_MAX_RUNSPACES, client to server.
    SetMaxRunspaces = 0x0002_1002, "SET_MAX_RUNSPACES";
    /// SET_MIN_RUNSPACES, client to server.
    SetMinRunspaces = 0x0002_1003, "SET_MIN_RUNSPACES";
    /// RUNSPACE_AVAILABILITY, server to client.
    RunspaceAvailability = 0x0002_1004, "RUNSPACE_AVAILABILITY";
    /// RUNSPACEPOOL_STATE, server to client.
    RunspacePoolState = 0x0002_1005, "RUNSPACEPOOL_STATE";
    /// CREATE_PIPELINE, client to server.
    CreatePipeline = 0x0002_1006, "CREATE_PIPELINE";
    /// GET_AVAILABLE_RUNSPACES, client to server.
    GetAvailableRunspaces = 0x0002_1007, "GET_AVAILABLE_RUNSPACES";
    /// USER_EVENT, server to client.
    UserEvent = 0x0002_1008, "USER_EVENT";
    /// APPLICATION_PRIVATE_DATA, server to client.
    ApplicationPrivateData = 0x0002_1009, "APPLICATION_PRIVATE_DATA";
    /// GET_COMMAND_METADATA, client to server.
    GetCommandMetadata = 0x0002_100A, "GET_COMMAND_METADATA";
    /// RUNSPACEPOOL_INIT_DATA, server to client.
    RunspacePoolInitData = 0x0002_100B, "RUNSPACEPOOL_INIT_DATA";
    /// RESET_RUNSPACE_STATE, client to server (protocol 2.3).
    ResetRunspaceState = 0x0002_100C, "RESET_RUNSPACE_STATE";
    /// RUNSPACEPOOL_HOST_CALL, server to client.
    RunspacePoolHostCall = 0x0002_1100, "RUNSPACEPOOL_HOST_CALL";
    /// RUNSPACEPOOL_HOST_RESPONSE, client to server.
    RunspacePoolHostResponse = 0x0002_1101, "RUNSPACEPOOL_HOST_RESPONSE";
    /// PIPELINE_INPUT, client to server.
    PipelineInput = 0x0004_1002, "PIPELINE_INPUT";
    /// END_OF_PIPELINE_INPUT, client to server.
    EndOfPipelineInput = 0x0004_1003, "END_OF_PIPELINE_INPUT";
    /// PIPELINE_OUTPUT, server to client.
    PipelineOutput = 0x0004_1004, "PIPELINE_OUTPUT";
    /// ERROR_RECORD, server to client.
    ErrorRecord = 0x0004_1005, "ERROR_RECORD";
    /// PIPELINE_STATE, server to client.
    PipelineState = 0x0004_1006, "PIPELINE_STATE";
    /// DEBUG_RECORD, server to client.
    DebugRecord = 0x0004_1007, "DEBUG_RECORD";
    /// VERBOSE_RECORD, server to client.
    VerboseRecord = 0x0004_1008, "VERBOSE_RECORD";
    /// WARNING_RECORD, server to client.
    WarningRecord = 0x0004_1009, "WARNING_RECORD";
    /// PROGRESS_RECORD, server to client.
    ProgressRecord = 0x0004_1010, "PROGRESS_RECORD";
    /// INFORMATION_RECORD, server to client (protocol 2.3).
    InformationRecord = 0x0004_1011, "INFORMATION_RECORD";
    /// PIPELINE_HOST_CALL, server to client.
    PipelineHostCall = 0x0004_1100, "PIPELINE_HOST_CALL";
    /// PIPELINE_HOST_RESPONSE, client to server.
    PipelineHostResponse = 0x0004_1101, "PIPELINE_HOST_RESPONSE";
}

impl MessageType {
    /// Whether the message belongs to a pipeline (the header carries a
    /// pipeline id) rather than to the runspace pool. CREATE_PIPELINE and
    /// GET_COMMAND_METADATA create a pipeline, so they carry its id.
    pub fn is_pipeline_message(self) -> bool {
        matches!(
            self,
            MessageType::CreatePipeline | MessageType::GetCommandMetadata
        ) || self.code() & 0x0004_0000 != 0
    }
}

impl std::fmt::Display for MessageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (0x{:08X})", self.spec_name(), self.code())
    }
}

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Fewer than 40 bytes.
    #[error("PSRP message of {len} bytes is shorter than its 40-byte header")]
    TooShort {
        /// The length that was found.
        len: usize,
    },
    /// The destination is neither 1 (client) nor 2 (server).
    #[error("PSRP message has an unknown destination {0:#010x} (expected 1 or 2)")]
    UnknownDestination(u32),
    /// The message type code is not one MS-PSRP defines.
    #[error("PSRP message has an unknown message type {0:#010x}")]
    UnknownMessageType(u32),
}

/// Converts a GUID to its .NET `Guid.ToByteArray` form.
pub fn guid_to_dotnet_bytes(id: Uuid) -> [u8; 16] {
    id.to_bytes_le()
}

/// Reads a GUID from its .NET `Guid.ToByteArray` form.
pub fn guid_from_dotnet_bytes(bytes: [u8; 16]) -> Uuid {
    Uuid::from_bytes_le(bytes)
}

/// One whole PSRP message: header fields and the (CLIXML) data.
#[derive(Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// Who the message is for.
    pub destination: Destination,
    /// What it is.
    pub message_type: MessageType,
    /// The runspace pool it belongs to.
    pub runspace_pool_id: Uuid,
    /// The pipeline it belongs to; `None` when the header holds the zero GUID.
    pub pipeline_id: Option<Uuid>,
    /// The data after the header, exactly as on the wire (a UTF-8 BOM, if
    /// the sender wrote one, is kept; see [`RawMessage::clixml`]).
    pub data: Vec<u8>,
}

impl std::fmt::Debug for RawMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Message data can hold secrets (SecureString parameters, session
        // keys): show only its size.
        f.debug_struct("RawMessage")
            .field("destination", &self.destination)
            .field("message_type", &self.message_type)
            .field("runspace_pool_id", &self.runspace_pool_id)
            .field("pipeline_id", &self.pipeline_id)
            .field("data_len", &self.data.len())
            .finish()
    }
}

impl RawMessage {
    /// Reads a message from its bytes (a reassembled fragment stream).
    pub fn decode(bytes: &[u8]) -> Result<RawMessage, HeaderError> {
        let header = bytes
            .get(..MESSAGE_HEADER_LEN)
            .ok_or(HeaderError::TooShort { len: bytes.len() })?;
        let (dest, mtype) = read_codes(header);
        let destination =
            Destination::from_code(dest).ok_or(HeaderError::UnknownDestination(dest))?;
        let message_type =
            MessageType::from_code(mtype).ok_or(HeaderError::UnknownMessageType(mtype))?;
        let mut rpid = [0u8; 16];
        rpid.copy_from_slice(&header[8..24]);
        let mut pid = [0u8; 16];
        pid.copy_from_slice(&header[24..40]);
        let pid = guid_from_dotnet_bytes(pid);
        Ok(RawMessage {
            destination,
            message_type,
            runspace_pool_id: guid_from_dotnet_bytes(rpid),
            pipeline_id: (!pid.is_nil()).then_some(pid),
            data: bytes[MESSAGE_HEADER_LEN..].to_vec(),
        })
    }

    /// Like [`RawMessage::decode`] but takes ownership of the buffer so the
    /// data is not copied.
    pub fn decode_owned(mut bytes: Vec<u8>) -> Result<RawMessage, HeaderError> {
        let mut msg = RawMessage::decode(bytes.get(..MESSAGE_HEADER_LEN).unwrap_or(&bytes))?;
        bytes.drain(..MESSAGE_HEADER_LEN);
        msg.data = bytes;
        Ok(msg)
    }

    /// The message bytes: header then data.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MESSAGE_HEADER_LEN + self.data.len());
        self.write_header(&mut out);
        out.extend_from_slice(&self.data);
        out
    }

    /// Appends the 40 header bytes to `out`.
    pub fn write_header(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.destination.code().to_le_bytes());
        out.extend_from_slice(&self.message_type.code().to_le_bytes());
        out.extend_from_slice(&guid_to_dotnet_bytes(self.runspace_pool_id));
        out.extend_from_slice(&guid_to_dotnet_bytes(
            self.pipeline_id.unwrap_or(Uuid::nil()),
        ));
    }

    /// The data without a leading UTF-8 BOM.
    pub fn data_without_bom(&self) -> &[u8] {
        self.data.strip_prefix(UTF8_BOM).unwrap_or(&self.data)
    }

    /// The data as CLIXML text (BOM removed).
    pub fn clixml(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(self.data_without_bom())
    }

    /// Whether the data starts with a UTF-8 BOM (servers write one).
    pub fn has_bom(&self) -> bool {
        self.data.starts_with(UTF8_BOM)
    }

    /// Prepends a UTF-8 BOM to the data, as Windows servers do.
    pub fn with_bom(mut self) -> Self {
        if !self.has_bom() {
            self.data.splice(0..0, UTF8_BOM.iter().copied());
        }
        self
    }
}

fn read_codes(header: &[u8]) -> (u32, u32) {
    let dest = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let mtype = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    (dest, mtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_uses_dotnet_byte_order() {
        let id = Uuid::parse_str("F5D64B74-8E54-4B03-A4D1-1002D9765852").unwrap();
        assert_eq!(
            guid_to_dotnet_bytes(id),
            [
                0x74, 0x4B, 0xD6, 0xF5, 0x54, 0x8E, 0x03, 0x4B, 0xA4, 0xD1, 0x10, 0x02, 0xD9, 0x76,
                0x58, 0x52
            ]
        );
        assert_eq!(guid_from_dotnet_bytes(guid_to_dotnet_bytes(id)), id);
    }

    #[test]
    fn message_type_codes_round_trip_and_are_unique() {
        let mut codes: Vec<u32> = MessageType::ALL.iter().map(|t| t.code()).collect();
        for t in MessageType::ALL {
            assert_eq!(MessageType::from_code(t.code()), Some(*t));
        }
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 31);
        assert_eq!(MessageType::ProgressRecord.code(), 0x0004_1010);
        assert_eq!(MessageType::from_code(0x0004_100A), None);
        assert!(MessageType::PipelineOutput.is_pipeline_message());
        assert!(MessageType::CreatePipeline.is_pipeline_message());
        assert!(!MessageType::RunspacePoolHostCall.is_pipeline_message());
    }

    #[test]
    fn encode_decode_round_trip() {
        let msg = RawMessage {
            destination: Destination::Server,
            message_type: MessageType::PipelineInput,
            runspace_pool_id: Uuid::from_u128(0x0011_2233_4455_6677_8899_aabb_ccdd_eeff),
            pipeline_id: Some(Uuid::from_u128(1)),
            data: b"<I32>1</I32>".to_vec(),
        };
        let bytes = msg.encode();
        assert_eq!(&bytes[0..8], &[2, 0, 0, 0, 0x02, 0x10, 0x04, 0]);
        assert_eq!(&bytes[8..12], &[0x33, 0x22, 0x11, 0x00]);
        assert_eq!(RawMessage::decode(&bytes).unwrap(), msg);
        assert_eq!(RawMessage::decode_owned(bytes).unwrap(), msg);
    }

    #[test]
    fn zero_pipeline_id_is_none_and_bom_is_stripped() {
        let mut bytes = vec![1, 0, 0, 0, 0x05, 0x10, 0x02, 0];
        bytes.extend([0u8; 32]);
        bytes.extend(b"\xEF\xBB\xBF<Obj/>");
        let msg = RawMessage::decode(&bytes).unwrap();
        assert_eq!(msg.pipeline_id, None);
        assert_eq!(msg.message_type, MessageType::RunspacePoolState);
        assert!(msg.has_bom());
        assert_eq!(msg.clixml().unwrap(), "<Obj/>");
        assert_eq!(msg.clone().with_bom().data, msg.data);
    }

    #[test]
    fn bad_headers_are_rejected() {
        assert_eq!(
            RawMessage::decode(&[0; 39]),
            Err(HeaderError::TooShort { len: 39 })
        );
        let mut bytes = vec![3, 0, 0, 0, 0x05, 0x10, 0x02, 0];
        bytes.extend([0u8; 32]);
        assert_eq!(
            RawMessage::decode(&bytes),
            Err(HeaderError::UnknownDestination(3))
        );
        bytes[0] = 1;
        bytes[4] = 0xFF;
        assert_eq!(
            RawMessage::decode(&bytes),
            Err(HeaderError::UnknownMessageType(0x0002_10FF))
        );
        assert!(RawMessage::decode_owned(vec![1, 2]).is_err());
    }
}
