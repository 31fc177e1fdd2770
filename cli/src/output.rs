//! Output objects on stdout: a JSON array, NDJSON or a CLIXML `<Objs>`
//! document, written as objects arrive.
//!
//! Each object is formatted where it is produced (spreading the work over
//! the hosts' tasks) and handed to one writer thread through a bounded
//! channel, so a slow reader of stdout slows the pipelines down instead of
//! filling memory. Memory stays flat in the number of objects.
//!
//! With several hosts, each object is wrapped as
//! `{"host": "<host>", "value": <object>}`, which keeps every value (also
//! strings and numbers) whole and tagged the same way.
//!
//! No control character reaches a terminal through the output: JSON
//! escapes C0 controls and, here, DEL and C1 controls too (`\u009b`);
//! CLIXML escapes them all as `_xHHHH_`.

use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use psrp_core::clixml::{self, JsonOptions, PsValue};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::args::OutputFormat;

const OBJS_START: &str =
    r#"<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">"#;

/// Objects in flight between the producers and the writer thread.
const CHANNEL_CAPACITY: usize = 512;

/// Turns one output object into the bytes of one item.
#[derive(Debug, Clone)]
pub struct Formatter {
    format: OutputFormat,
    json: JsonOptions,
    tag_hosts: bool,
    /// Length of the last item formatted (shared by the clones): the next
    /// item's buffer starts that large, so that a stream of similar objects
    /// does not grow (and copy) each buffer from small several times over.
    last_len: Arc<AtomicUsize>,
}

/// Smallest and largest starting capacity of an item's buffer.
const ITEM_CAPACITY: (usize, usize) = (256, 1 << 20);

impl Formatter {
    /// A formatter; `tag_hosts` wraps JSON items with their host.
    pub fn new(format: OutputFormat, json: JsonOptions, tag_hosts: bool) -> Self {
        Formatter {
            format,
            json,
            tag_hosts,
            last_len: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The bytes of one item (no separator, no newline).
    pub fn item(&self, host: &str, value: &PsValue) -> Vec<u8> {
        let last = self.last_len.load(Ordering::Relaxed);
        let capacity = last
            .saturating_add(last / 8)
            .clamp(ITEM_CAPACITY.0, ITEM_CAPACITY.1);
        let mut buf = Vec::with_capacity(capacity);
        self.append(&mut buf, host, value);
        self.last_len.store(buf.len(), Ordering::Relaxed);
        buf
    }

    /// Adds one item to a batch of items, after the separator the format
    /// puts between items, so that the writer writes the batch exactly as
    /// it would write its items sent one by one. Batching saves a hand-over
    /// to the writer thread per object where objects come in bulk.
    pub fn append(&self, batch: &mut Vec<u8>, host: &str, value: &PsValue) {
        if !batch.is_empty() {
            batch.extend_from_slice(match self.format {
                OutputFormat::Json => b",\n",
                OutputFormat::Ndjson => b"\n",
                OutputFormat::Clixml => b"",
            });
        }
        match self.format {
            OutputFormat::Clixml => batch.extend_from_slice(clixml::encode(value).as_bytes()),
            OutputFormat::Json | OutputFormat::Ndjson => {
                let view = clixml::JsonView::new(value, &self.json);
                let mut json = serde_json::Serializer::with_formatter(&mut *batch, NoC1Controls);
                // Writing to a Vec cannot fail and every map key is a string.
                let _ = if self.tag_hosts {
                    Tagged { host, value: view }.serialize(&mut json)
                } else {
                    view.serialize(&mut json)
                };
            }
        }
    }
}

/// serde_json's compact format, with DEL and the C1 controls (U+007F to
/// U+009F) written as `\u` escapes as well: serde_json escapes only C0,
/// and a terminal may act on C1 (U+009B is CSI).
pub(crate) struct NoC1Controls;

impl serde_json::ser::Formatter for NoC1Controls {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let bytes = fragment.as_bytes();
        let mut start = 0;
        // DEL is 0x7F; U+0080 to U+009F are 0xC2 0x80 to 0xC2 0x9F in UTF-8.
        for at in memchr::memchr2_iter(0x7F, 0xC2, bytes) {
            let code = match (bytes[at], bytes.get(at + 1)) {
                (0x7F, _) => 0x7F,
                (_, Some(&next @ 0x80..=0x9F)) => u32::from(next),
                _ => continue,
            };
            writer.write_all(&bytes[start..at])?;
            write!(writer, "\\u{code:04x}")?;
            start = at + if code == 0x7F { 1 } else { 2 };
        }
        writer.write_all(&bytes[start..])
    }
}

#[derive(serde::Serialize)]
struct Tagged<'a> {
    host: &'a str,
    value: clixml::JsonView<'a>,
}

/// The sending side, cloned into every host's task.
#[derive(Clone)]
pub struct OutputSender {
    tx: mpsc::Sender<Vec<u8>>,
}

/// stdout has gone away (e.g. the reading end of a pipe closed).
#[derive(Debug)]
pub struct OutputClosed;

impl OutputSender {
    /// Queues one formatted item (or a batch, see [`Formatter::append`]);
    /// waits while the writer is behind.
    pub async fn send(&self, item: Vec<u8>) -> Result<(), OutputClosed> {
        self.tx.send(item).await.map_err(|_| OutputClosed)
    }

    /// Queues one item from blocking code (no runtime needed).
    pub fn blocking_send(&self, item: Vec<u8>) -> Result<(), OutputClosed> {
        self.tx.blocking_send(item).map_err(|_| OutputClosed)
    }
}

/// The writer thread.
pub struct OutputWriter {
    thread: JoinHandle<io::Result<()>>,
}

impl OutputWriter {
    /// Starts the writer on `out` (stdout in the binary).
    pub fn start<W: Write + Send + 'static>(
        format: OutputFormat,
        out: W,
    ) -> (OutputSender, OutputWriter) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("psrp-output".into())
            .spawn(move || write_all(format, out, rx))
            .expect("spawning the output thread");
        (OutputSender { tx }, OutputWriter { thread })
    }

    /// Waits until every item is written and the document is closed. Call
    /// after every [`OutputSender`] is dropped.
    pub fn finish(self) -> io::Result<()> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the output thread panicked")))
    }
}

fn write_all<W: Write>(
    format: OutputFormat,
    out: W,
    mut rx: mpsc::Receiver<Vec<u8>>,
) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(64 << 10, out);
    let result = (|| {
        match format {
            OutputFormat::Json => out.write_all(b"[")?,
            OutputFormat::Clixml => out.write_all(OBJS_START.as_bytes())?,
            OutputFormat::Ndjson => {}
        }
        out.flush()?;
        let mut count = 0u64;
        loop {
            // Flush only when nothing is waiting: one write per batch when
            // busy, no delay when objects trickle in.
            let item = match rx.try_recv() {
                Ok(item) => item,
                Err(mpsc::error::TryRecvError::Empty) => {
                    out.flush()?;
                    match rx.blocking_recv() {
                        Some(item) => item,
                        None => break,
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            };
            match format {
                OutputFormat::Json => {
                    out.write_all(if count == 0 { b"\n" } else { b",\n" })?;
                    out.write_all(&item)?;
                }
                OutputFormat::Ndjson => {
                    out.write_all(&item)?;
                    out.write_all(b"\n")?;
                }
                OutputFormat::Clixml => out.write_all(&item)?,
            }
            count += 1;
        }
        match format {
            OutputFormat::Json => out.write_all(if count == 0 { b"]\n" } else { b"\n]\n" })?,
            OutputFormat::Clixml => out.write_all(b"</Objs>\n")?,
            OutputFormat::Ndjson => {}
        }
        out.flush()
    })();
    // Dropping the receiver makes later sends fail fast.
    drop(rx);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn run(format: OutputFormat, tag: bool, values: &[PsValue]) -> String {
        let sink = Shared::default();
        let (tx, writer) = OutputWriter::start(format, sink.clone());
        let f = Formatter::new(format, JsonOptions::default(), tag);
        for v in values {
            tx.blocking_send(f.item("h1", v)).unwrap();
        }
        drop(tx);
        writer.finish().unwrap();
        let bytes = sink.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn json_array_is_valid_for_zero_one_and_many() {
        assert_eq!(run(OutputFormat::Json, false, &[]), "[]\n");
        let text = run(OutputFormat::Json, false, &[PsValue::I32(1)]);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            serde_json::json!([1])
        );
        let text = run(
            OutputFormat::Json,
            true,
            &[PsValue::from("a"), PsValue::Null],
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            serde_json::json!([{"host": "h1", "value": "a"}, {"host": "h1", "value": null}])
        );
    }

    #[test]
    fn json_escapes_every_control_character() {
        let text = "esc\u{1b}[2J del\u{7f} csi\u{9b}2J nel\u{85} nbsp\u{a0} é \u{7f}";
        for format in [OutputFormat::Json, OutputFormat::Ndjson] {
            for tag in [false, true] {
                let out = run(format, tag, &[PsValue::from(text)]);
                let bytes = out.as_bytes();
                assert!(!bytes.contains(&0x1b) && !bytes.contains(&0x7f), "{out:?}");
                assert!(
                    !bytes
                        .windows(2)
                        .any(|w| w[0] == 0xc2 && (0x80..=0x9f).contains(&w[1])),
                    "{out:?}"
                );
                assert!(
                    out.contains(
                        "\\u001b[2J del\\u007f csi\\u009b2J nel\\u0085 nbsp\u{a0} é \\u007f"
                    ),
                    "{out:?}"
                );
                let back: serde_json::Value = if format == OutputFormat::Json {
                    serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].take()
                } else {
                    serde_json::from_str(out.trim_end()).unwrap()
                };
                let back = if tag { back["value"].clone() } else { back };
                assert_eq!(back, serde_json::json!(text));
            }
        }
    }

    #[test]
    fn ndjson_is_one_value_per_line() {
        let text = run(
            OutputFormat::Ndjson,
            false,
            &[PsValue::from("x\ny"), PsValue::I64(2)],
        );
        assert_eq!(text, "\"x\\ny\"\n2\n");
    }

    #[test]
    fn clixml_document_reads_back() {
        let text = run(
            OutputFormat::Clixml,
            false,
            &[PsValue::from("s"), PsValue::I32(7)],
        );
        let items: Vec<_> = clixml::ObjsReader::new(text.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].value, PsValue::I32(7));
    }

    #[test]
    fn a_batch_is_written_as_its_items_one_by_one() {
        let values = [PsValue::from("a\nb"), PsValue::I32(7), PsValue::Null];
        for format in [
            OutputFormat::Json,
            OutputFormat::Ndjson,
            OutputFormat::Clixml,
        ] {
            for tag in [false, true] {
                let sink = Shared::default();
                let (tx, writer) = OutputWriter::start(format, sink.clone());
                let f = Formatter::new(format, JsonOptions::default(), tag);
                // One batch of two, then a batch of one.
                let mut batch = Vec::new();
                f.append(&mut batch, "h1", &values[0]);
                f.append(&mut batch, "h1", &values[1]);
                tx.blocking_send(batch).unwrap();
                let mut batch = Vec::new();
                f.append(&mut batch, "h1", &values[2]);
                tx.blocking_send(batch).unwrap();
                drop(tx);
                writer.finish().unwrap();
                let batched = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
                assert_eq!(batched, run(format, tag, &values), "{format:?} tag {tag}");
            }
        }
    }

    #[test]
    fn a_closed_writer_fails_sends() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
        }
        let (tx, writer) = OutputWriter::start(OutputFormat::Ndjson, Broken);
        let mut failed = false;
        for _ in 0..(CHANNEL_CAPACITY * 4) {
            if tx.blocking_send(b"1".to_vec()).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "sends kept succeeding after stdout broke");
        drop(tx);
        assert!(writer.finish().is_err());
    }
}
