//! PSRP fragments (MS-PSRP 2.2.4): splitting messages into fragments that fit
//! a transport's size limit, and reassembling them.
//!
//! A fragment is a 21-byte header followed by a slice of one message:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | ObjectId, u64 big-endian: which message the fragment belongs to |
//! | 8 | 8 | FragmentId, u64 big-endian: 0, 1, 2, … within the message |
//! | 16 | 1 | flags: 0x01 start, 0x02 end (a whole message in one fragment has both) |
//! | 17 | 4 | BlobLength, u32 big-endian |
//! | 21 | n | the message bytes |
//!
//! One transport payload (a WS-Man `creationXml`, `Arguments` or `Stream`)
//! holds one or more fragments back to back, possibly of different messages.
//!
//! ```
//! use psrp_core::fragment::{Defragmenter, Fragmenter};
//!
//! let mut fragmenter = Fragmenter::new();
//! let message = vec![7u8; 100];
//! // Fragments of at most 50 bytes each, header included.
//! let fragments = fragmenter.fragment(&message, 50).unwrap();
//! assert_eq!(fragments.len(), 4);
//!
//! let mut defragmenter = Defragmenter::new();
//! let mut done = Vec::new();
//! for f in &fragments {
//!     done.extend(defragmenter.push(f).unwrap());
//! }
//! assert_eq!(done, vec![message]);
//! ```

use std::collections::HashMap;

/// Length of a fragment header in bytes.
pub const FRAGMENT_HEADER_LEN: usize = 21;

/// The smallest usable fragment size: a header and one byte of data.
pub const MIN_FRAGMENT_SIZE: usize = FRAGMENT_HEADER_LEN + 1;

const FLAG_START: u8 = 0x01;
const FLAG_END: u8 = 0x02;

/// The header of one fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentHeader {
    /// The message this fragment belongs to.
    pub object_id: u64,
    /// Position of the fragment within its message, from 0.
    pub fragment_id: u64,
    /// Whether this is the first fragment of the message.
    pub start: bool,
    /// Whether this is the last fragment of the message.
    pub end: bool,
    /// Number of message bytes that follow the header.
    pub blob_len: u32,
}

impl FragmentHeader {
    /// Reads a header from the first 21 bytes of `bytes`; `None` if there are
    /// fewer. Flag bits other than start and end are ignored, as PowerShell
    /// itself does.
    pub fn parse(bytes: &[u8]) -> Option<FragmentHeader> {
        let h: &[u8; FRAGMENT_HEADER_LEN] = bytes.get(..FRAGMENT_HEADER_LEN)?.try_into().ok()?;
        let mut u64buf = [0u8; 8];
        u64buf.copy_from_slice(&h[0..8]);
        let object_id = u64::from_be_bytes(u64buf);
        u64buf.copy_from_slice(&h[8..16]);
        let fragment_id = u64::from_be_bytes(u64buf);
        let flags = h[16];
        let blob_len = u32::from_be_bytes([h[17], h[18], h[19], h[20]]);
        Some(FragmentHeader {
            object_id,
            fragment_id,
            start: flags & FLAG_START != 0,
            end: flags & FLAG_END != 0,
            blob_len,
        })
    }

    /// Appends the 21 header bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.object_id.to_be_bytes());
        out.extend_from_slice(&self.fragment_id.to_be_bytes());
        let mut flags = 0;
        if self.start {
            flags |= FLAG_START;
        }
        if self.end {
            flags |= FLAG_END;
        }
        out.push(flags);
        out.extend_from_slice(&self.blob_len.to_be_bytes());
    }
}

/// Why a message could not be split into fragments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    /// The size limit cannot hold a fragment header and one byte of data.
    #[error("fragment size limit {limit} is too small: a fragment needs {MIN_FRAGMENT_SIZE} bytes at least (21-byte header and 1 data byte)")]
    LimitTooSmall {
        /// The limit that was asked for.
        limit: usize,
    },
}

/// A message waiting to be sent, cut into fragments as transport space
/// becomes available. The building block of [`Fragmenter`] and of the
/// state machines' send queues.
#[derive(Clone, Debug)]
pub struct OutgoingMessage {
    object_id: u64,
    data: Vec<u8>,
    sent: usize,
    next_fragment_id: u64,
}

impl OutgoingMessage {
    /// A message (header and payload, as [`crate::message::RawMessage::encode`]
    /// makes it) with the ObjectId it will carry.
    pub fn new(object_id: u64, data: Vec<u8>) -> Self {
        OutgoingMessage {
            object_id,
            data,
            sent: 0,
            next_fragment_id: 0,
        }
    }

    /// The ObjectId of this message.
    pub fn object_id(&self) -> u64 {
        self.object_id
    }

    /// Message bytes not yet written into a fragment.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.sent
    }

    /// Whether every byte has been written into a fragment.
    pub fn is_done(&self) -> bool {
        self.sent == self.data.len() && self.next_fragment_id > 0
    }

    /// Writes the next fragment, at most `max_fragment_size` bytes including
    /// its header, to `out`. Returns the number of bytes written: 0 when
    /// the limit cannot hold a header and one data byte (nothing is
    /// written) or the message is done.
    pub fn write_fragment(&mut self, out: &mut Vec<u8>, max_fragment_size: usize) -> usize {
        if self.is_done() {
            return 0;
        }
        let remaining = self.remaining();
        // A fragment's length field is 32 bits; cap what one fragment carries.
        let room = max_fragment_size
            .saturating_sub(FRAGMENT_HEADER_LEN)
            .min(u32::MAX as usize);
        // An empty message still needs its one (empty) fragment; otherwise
        // a fragment must carry at least one byte.
        if room == 0 && remaining > 0 || max_fragment_size < FRAGMENT_HEADER_LEN {
            return 0;
        }
        let take = remaining.min(room);
        let header = FragmentHeader {
            object_id: self.object_id,
            fragment_id: self.next_fragment_id,
            start: self.next_fragment_id == 0,
            end: take == remaining,
            blob_len: take as u32,
        };
        header.write(out);
        out.extend_from_slice(&self.data[self.sent..self.sent + take]);
        self.sent += take;
        self.next_fragment_id += 1;
        FRAGMENT_HEADER_LEN + take
    }
}

/// Allocates ObjectIds (one counter per runspace pool, from 1, shared by
/// the pool and its pipelines) and cuts messages into fragments.
#[derive(Clone, Debug)]
pub struct Fragmenter {
    next_object_id: u64,
}

impl Default for Fragmenter {
    fn default() -> Self {
        Self::new()
    }
}

impl Fragmenter {
    /// A fragmenter whose first ObjectId is 1.
    pub fn new() -> Self {
        Fragmenter { next_object_id: 1 }
    }

    /// Takes the next ObjectId.
    pub fn next_object_id(&mut self) -> u64 {
        let id = self.next_object_id;
        self.next_object_id += 1;
        id
    }

    /// Wraps a message for incremental sending with the next ObjectId.
    pub fn outgoing(&mut self, message: Vec<u8>) -> OutgoingMessage {
        OutgoingMessage::new(self.next_object_id(), message)
    }

    /// Splits one message into fragments of at most `max_fragment_size`
    /// bytes each (21-byte header included), under the next ObjectId.
    pub fn fragment(
        &mut self,
        message: &[u8],
        max_fragment_size: usize,
    ) -> Result<Vec<Vec<u8>>, FragmentError> {
        check_limit(max_fragment_size)?;
        let mut out_msg = self.outgoing(message.to_vec());
        let mut fragments = Vec::new();
        while !out_msg.is_done() {
            let mut buf = Vec::with_capacity(max_fragment_size.min(out_msg.remaining() + 21));
            out_msg.write_fragment(&mut buf, max_fragment_size);
            fragments.push(buf);
        }
        Ok(fragments)
    }

    /// Packs several messages, in order and each under its own ObjectId,
    /// into payloads of at most `max_payload_size` bytes: small messages
    /// share a payload (as in the `creationXml` that carries
    /// SESSION_CAPABILITY and INIT_RUNSPACEPOOL together) and a message that
    /// does not fit continues in the next payload.
    pub fn pack(
        &mut self,
        messages: &[&[u8]],
        max_payload_size: usize,
    ) -> Result<Vec<Vec<u8>>, FragmentError> {
        check_limit(max_payload_size)?;
        let mut queue: Vec<OutgoingMessage> =
            messages.iter().map(|m| self.outgoing(m.to_vec())).collect();
        let mut payloads = Vec::new();
        let mut idx = 0;
        while idx < queue.len() {
            let mut buf = Vec::new();
            while idx < queue.len() {
                let room = max_payload_size - buf.len();
                if queue[idx].write_fragment(&mut buf, room) == 0 {
                    break;
                }
                if queue[idx].is_done() {
                    idx += 1;
                }
            }
            payloads.push(buf);
        }
        queue.clear();
        Ok(payloads)
    }
}

fn check_limit(limit: usize) -> Result<(), FragmentError> {
    if limit < MIN_FRAGMENT_SIZE {
        return Err(FragmentError::LimitTooSmall { limit });
    }
    Ok(())
}

/// Limits that keep a hostile or broken peer from exhausting memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefragmentLimits {
    /// Largest message accepted, in bytes (header included).
    pub max_message_size: usize,
    /// Most messages being reassembled at the same time (per defragmenter).
    pub max_pending_objects: usize,
    /// Most bytes held at once by partial messages and incomplete
    /// fragments: the [`ReassemblyBudget`] of a defragmenter used on its
    /// own, and of a whole runspace pool in [`crate::pool::RunspacePool`]
    /// (its own and all its pipelines' defragmenters together).
    pub max_buffered_bytes: usize,
}

/// The default [`DefragmentLimits::max_message_size`]: 32 MiB. A message
/// holds one output object or record; PowerShell's own server-side default
/// for an object it receives is 10 MB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 32 << 20;

/// The default [`DefragmentLimits::max_buffered_bytes`]: 64 MiB, twice
/// the largest message.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 2 * DEFAULT_MAX_MESSAGE_SIZE;

impl Default for DefragmentLimits {
    /// 32 MiB per message, 64 MiB buffered, 1024 interleaved messages.
    fn default() -> Self {
        DefragmentLimits {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_pending_objects: 1024,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
        }
    }
}

/// Bytes held by partial messages, counted across every [`Defragmenter`]
/// that shares the budget: a runspace pool passes one budget to its own
/// defragmenter and to each of its pipelines', so the server cannot make
/// the client hold more however many pipelines it feeds at once. A plain
/// counter (sans-IO): its owner passes it to
/// [`Defragmenter::push_into_budget`].
///
/// A fragment is charged in full as soon as its header arrives (its data
/// may follow in later pushes) and a message stays charged until its last
/// fragment completes it; completed messages are handed over uncharged.
/// Every fragment, the last of a message included, must fit: so the bytes
/// held never exceed the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReassemblyBudget {
    limit: usize,
    used: usize,
}

impl ReassemblyBudget {
    /// An empty budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        ReassemblyBudget { limit, used: 0 }
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Gives back what a defragmenter that is dropped held
    /// ([`Defragmenter::held_bytes`]).
    pub fn release(&mut self, bytes: usize) {
        self.used = self.used.saturating_sub(bytes);
    }

    fn charge(&mut self, bytes: usize) {
        self.used = self.used.saturating_add(bytes);
    }

    fn fits(&self, bytes: usize) -> bool {
        self.used
            .checked_add(bytes)
            .is_some_and(|total| total <= self.limit)
    }
}

/// Why a fragment stream was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefragmentError {
    /// A fragment other than the first of its message arrived for a message
    /// that was never started (or its start fragment lacks the start flag).
    #[error("fragment {fragment_id} of object {object_id} arrived without a start fragment")]
    MissingStart {
        /// ObjectId of the fragment.
        object_id: u64,
        /// FragmentId of the fragment.
        fragment_id: u64,
    },
    /// A fragment arrived after a later one of the same message was
    /// expected: a fragment was skipped or the stream is reordered.
    #[error(
        "fragment {got} of object {object_id} arrived out of order: expected fragment {expected}"
    )]
    OutOfOrder {
        /// ObjectId of the fragment.
        object_id: u64,
        /// The FragmentId that should have come next.
        expected: u64,
        /// The FragmentId that came.
        got: u64,
    },
    /// A fragment that was already received arrived again, or a message
    /// was started twice.
    #[error("duplicate fragment {fragment_id} of object {object_id}")]
    Duplicate {
        /// ObjectId of the fragment.
        object_id: u64,
        /// FragmentId of the fragment.
        fragment_id: u64,
    },
    /// The start flag was set on a fragment that is not the first.
    #[error(
        "fragment {fragment_id} of object {object_id} has the start flag but is not fragment 0"
    )]
    UnexpectedStart {
        /// ObjectId of the fragment.
        object_id: u64,
        /// FragmentId of the fragment.
        fragment_id: u64,
    },
    /// A message grew beyond [`DefragmentLimits::max_message_size`].
    #[error(
        "a message from the server (object {object_id}) is larger than the limit of {limit} \
         bytes (max_message_size): {size} bytes or more"
    )]
    TooLarge {
        /// ObjectId of the message.
        object_id: u64,
        /// Its size so far (or as announced).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// More messages were in progress than [`DefragmentLimits::max_pending_objects`].
    #[error("more than {limit} interleaved objects are being reassembled")]
    TooManyPending {
        /// The limit.
        limit: usize,
    },
    /// Partial messages would hold more than their [`ReassemblyBudget`]
    /// ([`DefragmentLimits::max_buffered_bytes`]).
    #[error(
        "partial messages from the server would hold more than the limit of {limit} bytes \
         (max_buffered_bytes): {held} bytes held and a fragment of {needed} more"
    )]
    BufferLimit {
        /// The limit.
        limit: usize,
        /// Bytes held when the fragment came.
        held: usize,
        /// The fragment's data length.
        needed: usize,
    },
    /// The stream ended inside a fragment or with messages unfinished.
    #[error("fragment stream ended early: {pending_objects} unfinished objects, {trailing_bytes} bytes of an incomplete fragment")]
    Truncated {
        /// Messages started but not ended.
        pending_objects: usize,
        /// Bytes of a fragment whose header or data is incomplete.
        trailing_bytes: usize,
    },
}

impl DefragmentError {
    /// Whether a memory limit was hit ([`DefragmentError::TooLarge`],
    /// [`DefragmentError::BufferLimit`]): the stream may be fine, and a
    /// larger limit would take it.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            DefragmentError::TooLarge { .. } | DefragmentError::BufferLimit { .. }
        )
    }
}

#[derive(Debug)]
struct Partial {
    next_fragment_id: u64,
    data: Vec<u8>,
}

/// Reassembles messages from a byte stream of fragments, which may hold
/// several fragments back to back and interleave fragments of different
/// messages. A fragment may also be split across calls to
/// [`Defragmenter::push`]: its data is gathered in one buffer sized from
/// its header, never copied again.
///
/// Memory: at most [`DefragmentLimits::max_buffered_bytes`] of partial
/// messages and incomplete fragments, checked from each fragment's header
/// before its data is kept (a [`ReassemblyBudget`] of its own, or one
/// shared with other defragmenters through
/// [`Defragmenter::push_into_budget`]).
///
/// After an error the stream is corrupt: the session that fed it should be
/// abandoned. The defragmenter never panics, whatever the input.
#[derive(Debug)]
pub struct Defragmenter {
    limits: DefragmentLimits,
    partial: HashMap<u64, Partial>,
    /// Bytes of the partial messages (charged to the budget).
    buffered: usize,
    /// An incomplete fragment carried over to the next push: its header,
    /// then its data as it arrives.
    tail: Vec<u8>,
    /// The budget when used on its own ([`Defragmenter::push_into`]).
    own: ReassemblyBudget,
}

impl Default for Defragmenter {
    fn default() -> Self {
        Self::new()
    }
}

impl Defragmenter {
    /// A defragmenter with the default limits.
    pub fn new() -> Self {
        Self::with_limits(DefragmentLimits::default())
    }

    /// A defragmenter with the given limits.
    pub fn with_limits(limits: DefragmentLimits) -> Self {
        Defragmenter {
            limits,
            partial: HashMap::new(),
            buffered: 0,
            tail: Vec::new(),
            own: ReassemblyBudget::new(limits.max_buffered_bytes),
        }
    }

    /// Messages started but not yet complete.
    pub fn pending_objects(&self) -> usize {
        self.partial.len()
    }

    /// Bytes this defragmenter has charged to its budget: partial messages
    /// and the announced data of an incomplete fragment. Give them back
    /// ([`ReassemblyBudget::release`]) when dropping it from a shared
    /// budget.
    pub fn held_bytes(&self) -> usize {
        self.buffered.saturating_add(self.tail_charge())
    }

    /// Whether nothing is held: no partial message and no partial fragment.
    pub fn is_idle(&self) -> bool {
        self.partial.is_empty() && self.tail.is_empty()
    }

    /// Checks that the stream ended cleanly (nothing partial is left).
    pub fn finish(&self) -> Result<(), DefragmentError> {
        if self.is_idle() {
            Ok(())
        } else {
            Err(DefragmentError::Truncated {
                pending_objects: self.partial.len(),
                trailing_bytes: self.tail.len(),
            })
        }
    }

    /// Feeds bytes and returns the messages they complete, in the order
    /// their last fragments arrived.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, DefragmentError> {
        let mut done = Vec::new();
        self.push_into(data, &mut done)?;
        Ok(done)
    }

    /// Like [`Defragmenter::push`] but appends completed messages to `done`,
    /// so that those completed before an error are kept.
    pub fn push_into(
        &mut self,
        data: &[u8],
        done: &mut Vec<Vec<u8>>,
    ) -> Result<(), DefragmentError> {
        let mut own = self.own;
        let result = self.push_into_budget(data, done, &mut own);
        self.own = own;
        result
    }

    /// [`Defragmenter::push_into`] with a budget shared with other
    /// defragmenters (those of one runspace pool) instead of its own.
    pub fn push_into_budget(
        &mut self,
        data: &[u8],
        done: &mut Vec<Vec<u8>>,
        budget: &mut ReassemblyBudget,
    ) -> Result<(), DefragmentError> {
        // The carried-over fragment is checked and charged again below.
        budget.release(self.tail_charge());
        let result = self.push_inner(data, done, budget);
        if result.is_err() {
            // A fragment whose header was refused stays out of the budget:
            // charging its announced size would starve the pool's other
            // streams (the stream is broken anyway).
            self.tail = Vec::new();
        }
        budget.charge(self.tail_charge());
        result
    }

    /// What the incomplete fragment is charged: its announced data, once
    /// its header is in.
    fn tail_charge(&self) -> usize {
        FragmentHeader::parse(&self.tail).map_or(0, |h| h.blob_len as usize)
    }

    fn push_inner(
        &mut self,
        mut data: &[u8],
        done: &mut Vec<Vec<u8>>,
        budget: &mut ReassemblyBudget,
    ) -> Result<(), DefragmentError> {
        if !self.tail.is_empty() {
            // Complete the carried-over fragment from the new bytes: its
            // header first, then its data.
            if self.tail.len() < FRAGMENT_HEADER_LEN {
                let take = (FRAGMENT_HEADER_LEN - self.tail.len()).min(data.len());
                self.tail.extend_from_slice(&data[..take]);
                data = &data[take..];
            }
            let Some(header) = FragmentHeader::parse(&self.tail) else {
                // Still no whole header: every byte was taken.
                return Ok(());
            };
            self.check_announced(&header, budget)?;
            let total = FRAGMENT_HEADER_LEN.saturating_add(header.blob_len as usize);
            let missing = total.saturating_sub(self.tail.len());
            // Checked above: allocate the whole fragment once.
            self.tail.reserve_exact(missing);
            let take = missing.min(data.len());
            self.tail.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.tail.len() < total {
                return Ok(());
            }
            let mut blob = std::mem::take(&mut self.tail);
            blob.drain(..FRAGMENT_HEADER_LEN);
            self.accept(&header, blob, done, budget)?;
        }
        let used = self.consume(data, done, budget)?;
        let rest = &data[used..];
        if let Some(header) = FragmentHeader::parse(rest) {
            // Checked by `consume`: allocate the whole fragment once.
            self.tail
                .reserve_exact(FRAGMENT_HEADER_LEN.saturating_add(header.blob_len as usize));
        }
        self.tail.extend_from_slice(rest);
        Ok(())
    }

    /// Processes whole fragments from `data`; returns how many bytes were
    /// used. It stops at an incomplete fragment whose header passed the
    /// checks, or at fewer than 21 bytes.
    fn consume(
        &mut self,
        data: &[u8],
        done: &mut Vec<Vec<u8>>,
        budget: &mut ReassemblyBudget,
    ) -> Result<usize, DefragmentError> {
        let mut pos = 0;
        while let Some(header) = data.get(pos..).and_then(FragmentHeader::parse) {
            self.check_announced(&header, budget)?;
            let body_start = pos + FRAGMENT_HEADER_LEN;
            let Some(blob) = body_start
                .checked_add(header.blob_len as usize)
                .and_then(|end| data.get(body_start..end))
            else {
                break;
            };
            self.accept(&header, blob, done, budget)?;
            pos = body_start + blob.len();
        }
        Ok(pos)
    }

    /// Rejects a fragment from its header alone, before its data is
    /// buffered, when it cannot be valid or would exceed the limits. Every
    /// fragment must fit the budget, the last of a message too: completing
    /// a message needs its bytes and the fragment's at once.
    fn check_announced(
        &self,
        h: &FragmentHeader,
        budget: &ReassemblyBudget,
    ) -> Result<(), DefragmentError> {
        let blob_len = h.blob_len as usize;
        let so_far = self.partial.get(&h.object_id).map_or(0, |p| p.data.len());
        let size = so_far.saturating_add(blob_len);
        if size > self.limits.max_message_size {
            return Err(DefragmentError::TooLarge {
                object_id: h.object_id,
                size,
                limit: self.limits.max_message_size,
            });
        }
        if !budget.fits(blob_len) {
            return Err(DefragmentError::BufferLimit {
                limit: budget.limit(),
                held: budget.used(),
                needed: blob_len,
            });
        }
        Ok(())
    }

    /// Takes a whole fragment whose header passed [`Self::check_announced`];
    /// `blob` is borrowed from the pushed bytes or owned (gathered across
    /// pushes; then a one-fragment message is handed over without a copy).
    fn accept<B: AsRef<[u8]> + Into<Vec<u8>>>(
        &mut self,
        h: &FragmentHeader,
        blob: B,
        done: &mut Vec<Vec<u8>>,
        budget: &mut ReassemblyBudget,
    ) -> Result<(), DefragmentError> {
        let Some(p) = self.partial.get_mut(&h.object_id) else {
            if h.fragment_id != 0 || !h.start {
                return Err(DefragmentError::MissingStart {
                    object_id: h.object_id,
                    fragment_id: h.fragment_id,
                });
            }
            if h.end {
                done.push(blob.into());
                return Ok(());
            }
            if self.partial.len() >= self.limits.max_pending_objects {
                return Err(DefragmentError::TooManyPending {
                    limit: self.limits.max_pending_objects,
                });
            }
            let data: Vec<u8> = blob.into();
            budget.charge(data.len());
            self.buffered += data.len();
            self.partial.insert(
                h.object_id,
                Partial {
                    next_fragment_id: 1,
                    data,
                },
            );
            return Ok(());
        };
        if h.fragment_id < p.next_fragment_id {
            return Err(DefragmentError::Duplicate {
                object_id: h.object_id,
                fragment_id: h.fragment_id,
            });
        }
        if h.fragment_id > p.next_fragment_id {
            return Err(DefragmentError::OutOfOrder {
                object_id: h.object_id,
                expected: p.next_fragment_id,
                got: h.fragment_id,
            });
        }
        if h.start {
            return Err(DefragmentError::UnexpectedStart {
                object_id: h.object_id,
                fragment_id: h.fragment_id,
            });
        }
        let blob = blob.as_ref();
        if !h.end {
            p.data.extend_from_slice(blob);
            p.next_fragment_id = p.next_fragment_id.saturating_add(1);
            budget.charge(blob.len());
            self.buffered += blob.len();
            return Ok(());
        }
        if let Some(mut p) = self.partial.remove(&h.object_id) {
            budget.release(p.data.len());
            self.buffered -= p.data.len();
            p.data.extend_from_slice(blob);
            done.push(p.data);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(object_id: u64, fragment_id: u64, start: bool, end: bool, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        FragmentHeader {
            object_id,
            fragment_id,
            start,
            end,
            blob_len: data.len() as u32,
        }
        .write(&mut out);
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn header_layout_is_big_endian() {
        let bytes = frag(0x0102, 0x0304, true, true, b"ab");
        assert_eq!(
            bytes,
            [0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 3, 4, 3, 0, 0, 0, 2, b'a', b'b']
        );
        let h = FragmentHeader::parse(&bytes).unwrap();
        assert_eq!(
            (h.object_id, h.fragment_id, h.start, h.end, h.blob_len),
            (0x102, 0x304, true, true, 2)
        );
        assert!(FragmentHeader::parse(&bytes[..20]).is_none());
    }

    #[test]
    fn fragment_sizes_respect_the_limit_and_ids_count_up() {
        let mut f = Fragmenter::new();
        let msg: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let frags = f.fragment(&msg, 121).unwrap();
        assert_eq!(frags.len(), 10);
        for (i, fr) in frags.iter().enumerate() {
            assert!(fr.len() <= 121);
            let h = FragmentHeader::parse(fr).unwrap();
            assert_eq!(h.object_id, 1);
            assert_eq!(h.fragment_id, i as u64);
            assert_eq!(h.start, i == 0);
            assert_eq!(h.end, i == 9);
        }
        let second = f.fragment(b"x", 100).unwrap();
        assert_eq!(FragmentHeader::parse(&second[0]).unwrap().object_id, 2);
        assert_eq!(second[0][16], 3);
    }

    #[test]
    fn limit_below_minimum_is_rejected() {
        let mut f = Fragmenter::new();
        assert_eq!(
            f.fragment(b"abc", 21),
            Err(FragmentError::LimitTooSmall { limit: 21 })
        );
        assert!(f.fragment(b"abc", 22).unwrap().len() == 3);
    }

    #[test]
    fn empty_message_is_one_empty_fragment() {
        let mut f = Fragmenter::new();
        let frags = f.fragment(b"", 100).unwrap();
        assert_eq!(frags, vec![frag(1, 0, true, true, b"")]);
        let mut d = Defragmenter::new();
        assert_eq!(d.push(&frags[0]).unwrap(), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn pack_shares_payloads_and_splits_what_does_not_fit() {
        let mut f = Fragmenter::new();
        let a = vec![b'a'; 30];
        let b = vec![b'b'; 100];
        let payloads = f.pack(&[&a, &b], 120).unwrap();
        // a (21+30) then the first 48 bytes of b in payload 1; rest after.
        assert_eq!(payloads.len(), 2);
        assert_eq!(payloads[0].len(), 120);
        assert_eq!(&payloads[0][..51], frag(1, 0, true, true, &a).as_slice());
        assert_eq!(
            &payloads[0][51..],
            frag(2, 0, true, false, &b[..48]).as_slice()
        );
        assert_eq!(payloads[1], frag(2, 1, false, true, &b[48..]));
        let mut d = Defragmenter::new();
        let mut got = Vec::new();
        for p in &payloads {
            got.extend(d.push(p).unwrap());
        }
        assert_eq!(got, vec![a, b]);
        assert!(d.finish().is_ok());
    }

    #[test]
    fn pack_does_not_leave_a_header_without_data() {
        let mut f = Fragmenter::new();
        let a = vec![1u8; 80];
        let b = vec![2u8; 10];
        // After a (101 bytes), 20 bytes remain: too few for b's header + 1.
        let payloads = f.pack(&[&a, &b], 121).unwrap();
        assert_eq!(payloads.len(), 2);
        assert_eq!(payloads[0].len(), 101);
        assert_eq!(payloads[1], frag(2, 0, true, true, &b));
    }

    #[test]
    fn interleaved_objects_reassemble() {
        let mut stream = Vec::new();
        stream.extend(frag(5, 0, true, false, b"he"));
        stream.extend(frag(6, 0, true, false, b"wo"));
        stream.extend(frag(5, 1, false, false, b"ll"));
        stream.extend(frag(6, 1, false, true, b"rld"));
        stream.extend(frag(5, 2, false, true, b"o"));
        let mut d = Defragmenter::new();
        assert_eq!(
            d.push(&stream).unwrap(),
            vec![b"world".to_vec(), b"hello".to_vec()]
        );
        assert!(d.is_idle());
    }

    #[test]
    fn fragment_split_across_pushes() {
        let stream = [
            frag(1, 0, true, false, b"abc"),
            frag(1, 1, false, true, b"def"),
        ]
        .concat();
        for cut in 0..stream.len() {
            let mut d = Defragmenter::new();
            let mut got = d.push(&stream[..cut]).unwrap();
            got.extend(d.push(&stream[cut..]).unwrap());
            assert_eq!(got, vec![b"abcdef".to_vec()], "cut at {cut}");
            assert!(d.finish().is_ok());
        }
    }

    #[test]
    fn truncated_stream_is_reported() {
        let mut d = Defragmenter::new();
        d.push(&frag(1, 0, true, false, b"abc")).unwrap();
        d.push(&frag(1, 1, false, true, b"def")[..23]).unwrap();
        assert_eq!(
            d.finish(),
            Err(DefragmentError::Truncated {
                pending_objects: 1,
                trailing_bytes: 23
            })
        );
    }

    #[test]
    fn out_of_order_duplicate_and_missing_start_are_rejected() {
        let mut d = Defragmenter::new();
        assert_eq!(
            d.push(&frag(3, 1, false, true, b"x")),
            Err(DefragmentError::MissingStart {
                object_id: 3,
                fragment_id: 1
            })
        );
        let mut d = Defragmenter::new();
        assert_eq!(
            d.push(&frag(3, 0, false, true, b"x")),
            Err(DefragmentError::MissingStart {
                object_id: 3,
                fragment_id: 0
            })
        );
        let mut d = Defragmenter::new();
        d.push(&frag(3, 0, true, false, b"x")).unwrap();
        assert_eq!(
            d.push(&frag(3, 2, false, true, b"x")),
            Err(DefragmentError::OutOfOrder {
                object_id: 3,
                expected: 1,
                got: 2
            })
        );
        let mut d = Defragmenter::new();
        d.push(&frag(3, 0, true, false, b"x")).unwrap();
        assert_eq!(
            d.push(&frag(3, 0, true, false, b"x")),
            Err(DefragmentError::Duplicate {
                object_id: 3,
                fragment_id: 0
            })
        );
        let mut d = Defragmenter::new();
        d.push(&frag(3, 0, true, false, b"x")).unwrap();
        assert_eq!(
            d.push(&frag(3, 1, true, true, b"x")),
            Err(DefragmentError::UnexpectedStart {
                object_id: 3,
                fragment_id: 1
            })
        );
    }

    #[test]
    fn limits_are_enforced_before_buffering() {
        let limits = DefragmentLimits {
            max_message_size: 10,
            max_pending_objects: 2,
            max_buffered_bytes: 8,
        };
        let mut d = Defragmenter::with_limits(limits);
        // Announced length alone triggers the size check, even with no data.
        let mut header_only = Vec::new();
        FragmentHeader {
            object_id: 1,
            fragment_id: 0,
            start: true,
            end: true,
            blob_len: u32::MAX,
        }
        .write(&mut header_only);
        assert!(matches!(
            d.push(&header_only),
            Err(DefragmentError::TooLarge { object_id: 1, .. })
        ));

        let mut d = Defragmenter::with_limits(limits);
        d.push(&frag(1, 0, true, false, b"123456")).unwrap();
        assert!(matches!(
            d.push(&frag(1, 1, false, true, b"12345")),
            Err(DefragmentError::TooLarge { size: 11, .. })
        ));

        let mut d = Defragmenter::with_limits(limits);
        d.push(&frag(1, 0, true, false, b"")).unwrap();
        d.push(&frag(2, 0, true, false, b"")).unwrap();
        assert_eq!(
            d.push(&frag(3, 0, true, false, b"")),
            Err(DefragmentError::TooManyPending { limit: 2 })
        );

        let mut d = Defragmenter::with_limits(limits);
        d.push(&frag(1, 0, true, false, b"12345")).unwrap();
        assert_eq!(
            d.push(&frag(2, 0, true, false, b"1234")),
            Err(DefragmentError::BufferLimit {
                limit: 8,
                held: 5,
                needed: 4
            })
        );
    }

    /// The last fragment of a message needs memory too: it used to skip
    /// the buffered check, so a partial message plus any number of bytes
    /// in end fragments went through.
    #[test]
    fn end_fragments_must_fit_the_budget() {
        let limits = DefragmentLimits {
            max_message_size: 10,
            max_pending_objects: 4,
            max_buffered_bytes: 8,
        };
        let limit = |held, needed| {
            Err(DefragmentError::BufferLimit {
                limit: 8,
                held,
                needed,
            })
        };
        // A whole message in one fragment, beside a partial one.
        let mut d = Defragmenter::with_limits(limits);
        d.push(&frag(1, 0, true, false, b"12345")).unwrap();
        assert_eq!(d.push(&frag(2, 0, true, true, b"1234")), limit(5, 4));
        // The end of the partial message itself (9 bytes, under the
        // message limit).
        let mut d = Defragmenter::with_limits(limits);
        d.push(&frag(1, 0, true, false, b"12345")).unwrap();
        assert_eq!(d.push(&frag(1, 1, false, true, b"1234")), limit(5, 4));
        // What fits passes, and a completed message is no longer held.
        let mut d = Defragmenter::with_limits(limits);
        d.push(&frag(1, 0, true, false, b"12345")).unwrap();
        assert_eq!(
            d.push(&frag(1, 1, false, true, b"123")).unwrap(),
            [b"12345123"]
        );
        assert_eq!(d.held_bytes(), 0);
        assert_eq!(
            d.push(&frag(2, 0, true, true, b"12345678")).unwrap().len(),
            1
        );
    }

    #[test]
    fn defragmenters_sharing_a_budget_hold_no_more_than_it_together() {
        let limits = DefragmentLimits {
            max_message_size: 100,
            max_pending_objects: 4,
            max_buffered_bytes: 100,
        };
        let mut budget = ReassemblyBudget::new(10);
        let mut pool = Defragmenter::with_limits(limits);
        let mut pipeline = Defragmenter::with_limits(limits);
        let mut done = Vec::new();
        pool.push_into_budget(&frag(1, 0, true, false, b"123456"), &mut done, &mut budget)
            .unwrap();
        assert_eq!((budget.used(), pool.held_bytes()), (6, 6));
        // Each alone is far below its own limits; together they are not.
        assert_eq!(
            pipeline.push_into_budget(&frag(2, 0, true, false, b"12345"), &mut done, &mut budget),
            Err(DefragmentError::BufferLimit {
                limit: 10,
                held: 6,
                needed: 5
            })
        );
        // The pool's partial message is dropped (say its pipeline closed).
        budget.release(pool.held_bytes());
        drop(pool);
        let mut pipeline = Defragmenter::with_limits(limits);
        pipeline
            .push_into_budget(&frag(2, 0, true, false, b"12345"), &mut done, &mut budget)
            .unwrap();
        pipeline
            .push_into_budget(&frag(2, 1, false, true, b"12345"), &mut done, &mut budget)
            .unwrap();
        assert_eq!(done, [b"1234512345".to_vec()]);
        assert_eq!(budget.used(), 0);
    }

    /// A fragment arriving in pieces is charged in full from its header
    /// on, and gathered in one buffer of its announced size.
    #[test]
    fn an_incomplete_fragment_is_charged_from_its_header() {
        let limits = DefragmentLimits {
            max_message_size: 100,
            max_pending_objects: 4,
            max_buffered_bytes: 100,
        };
        let mut budget = ReassemblyBudget::new(10);
        let mut d = Defragmenter::with_limits(limits);
        let mut other = Defragmenter::with_limits(limits);
        let mut done = Vec::new();
        let big = frag(1, 0, true, true, b"12345678");
        d.push_into_budget(&big[..10], &mut done, &mut budget)
            .unwrap();
        assert_eq!(budget.used(), 0, "no whole header yet");
        d.push_into_budget(&big[10..22], &mut done, &mut budget)
            .unwrap();
        assert_eq!(budget.used(), 8, "the header announces 8 bytes");
        assert_eq!(d.tail.capacity(), big.len());
        assert!(matches!(
            other.push_into_budget(&frag(2, 0, true, true, b"123"), &mut done, &mut budget),
            Err(DefragmentError::BufferLimit { held: 8, .. })
        ));
        for byte in big[22..].chunks(1) {
            d.push_into_budget(byte, &mut done, &mut budget).unwrap();
        }
        assert_eq!(done, [b"12345678".to_vec()]);
        assert_eq!((budget.used(), d.held_bytes()), (0, 0));
        assert!(d.finish().is_ok());
    }

    /// A header refused when its last bytes arrive (it announces more than
    /// the budget has left) is not charged: the other streams of the pool
    /// keep their share.
    #[test]
    fn a_refused_header_completed_across_pushes_is_not_charged() {
        let limits = DefragmentLimits {
            max_message_size: 100,
            max_pending_objects: 4,
            max_buffered_bytes: 100,
        };
        let mut budget = ReassemblyBudget::new(10);
        let mut d = Defragmenter::with_limits(limits);
        let mut other = Defragmenter::with_limits(limits);
        let mut done = Vec::new();
        let big = frag(1, 0, true, true, &[7; 50]);
        d.push_into_budget(&big[..10], &mut done, &mut budget)
            .unwrap();
        assert!(matches!(
            d.push_into_budget(&big[10..30], &mut done, &mut budget),
            Err(DefragmentError::BufferLimit { needed: 50, .. })
        ));
        assert_eq!((budget.used(), d.held_bytes()), (0, 0));
        other
            .push_into_budget(
                &frag(2, 0, true, true, b"123456789"),
                &mut done,
                &mut budget,
            )
            .unwrap();
        assert_eq!(done, [b"123456789".to_vec()]);
    }

    #[test]
    fn a_stream_fed_byte_by_byte_reassembles_the_same() {
        let mut f = Fragmenter::new();
        let messages: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 40 * usize::from(i)]).collect();
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let stream = f.pack(&refs, 50).unwrap().concat();
        let mut d = Defragmenter::new();
        let mut done = Vec::new();
        for byte in stream.chunks(1) {
            d.push_into(byte, &mut done).unwrap();
        }
        assert_eq!(done, messages);
        assert!(d.finish().is_ok());
        assert_eq!(d.held_bytes(), 0);
    }
}
