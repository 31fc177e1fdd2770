//! CLIXML decoding throughput on 100,000 file-system items as a Windows
//! server sends them (one PIPELINE_OUTPUT body per object, see fs_items.rs):
//! a tokenize-only quick-xml pass over the same bytes (the floor for any
//! quick-xml decoder), decoding to values, and decoding plus JSON.
//!
//! The stream is 1,000 distinct messages decoded 100 times over (4-5 MB of
//! input held in memory, not 500 MB); each message is decoded on its own
//! and dropped, so memory stays at one object. The distinct messages are
//! written to target/clixml-bench/fs_items.xml (one per line) for
//! psrp-core/benches/psrpcore_bench.py, which times psrpcore on the same
//! bytes.
//!
//! After criterion's runs, a summary times the three passes interleaved,
//! best of 50 rounds over the 1,000 distinct messages each: on a shared
//! machine the best rounds are the ones nobody else disturbed, and the
//! interleaving keeps the ratios fair.
//!
//! Run: cargo bench -p psrp-core --bench clixml

mod fs_items;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use psrp_core::clixml::{decode, write_json, JsonOptions, ObjsReader};
use quick_xml::events::Event;
use quick_xml::Reader;

const DISTINCT: usize = 1_000;
const OBJECTS: usize = 100_000;

fn tokenize(xml: &str) -> usize {
    let mut reader = Reader::from_str(xml);
    let mut events = 0;
    loop {
        match reader.read_event() {
            Ok(Event::Eof) | Err(_) => return events,
            Ok(e) => {
                black_box(&e);
                events += 1;
            }
        }
    }
}

/// The same messages as one `<Objs>` document (as Export-Clixml writes
/// them: one item per line), for the document reader's pass.
fn objs_document(messages: &[String]) -> String {
    let mut doc = String::from(
        "#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\">\r\n",
    );
    for m in messages {
        doc.push_str("  ");
        doc.push_str(m);
        doc.push_str("\r\n");
    }
    doc.push_str("</Objs>");
    doc
}

/// Reads every item of an `<Objs>` document (as `psrp clixml` does).
fn read_objs(doc: &str) -> usize {
    let mut n = 0;
    for item in ObjsReader::new(doc.as_bytes()) {
        black_box(item.unwrap());
        n += 1;
    }
    n
}

/// The floor for the document reader: quick-xml's tokenizer over the same
/// document (the prefix line is not XML).
fn tokenize_objs(doc: &str) -> usize {
    tokenize(&doc[doc.find('<').unwrap()..])
}

fn corpus_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/clixml-bench/fs_items.xml")
}

fn bench(c: &mut Criterion) {
    let messages = fs_items::messages(DISTINCT);
    let round_bytes: usize = messages.iter().map(String::len).sum();
    let path = corpus_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, messages.join("\n") + "\n").unwrap();
    let rounds = OBJECTS / DISTINCT;
    eprintln!(
        "{OBJECTS} objects, {} bytes ({} bytes per object on average); corpus in {}",
        round_bytes * rounds,
        round_bytes / DISTINCT,
        path.display()
    );

    let mut group = c.benchmark_group("clixml_100k_fs_items");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((round_bytes * rounds) as u64));
    group.bench_function("tokenize_only", |b| {
        b.iter(|| {
            let mut n = 0;
            for _ in 0..rounds {
                for m in &messages {
                    n += tokenize(m);
                }
            }
            n
        })
    });
    group.bench_function("decode", |b| {
        b.iter(|| {
            for _ in 0..rounds {
                for m in &messages {
                    black_box(decode(m).unwrap());
                }
            }
        })
    });
    let options = JsonOptions::default();
    group.bench_function("decode_to_json", |b| {
        let mut out = Vec::with_capacity(1 << 16);
        b.iter(|| {
            for _ in 0..rounds {
                for m in &messages {
                    out.clear();
                    write_json(&mut out, &decode(m).unwrap(), &options).unwrap();
                    black_box(&out);
                }
            }
        })
    });
    group.finish();

    // The `<Objs>` document reader over the same items in one document.
    let doc = objs_document(&messages);
    assert_eq!(read_objs(&doc), DISTINCT);
    let mut group = c.benchmark_group("clixml_objs_document_100k_fs_items");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((doc.len() * rounds) as u64));
    group.bench_function("tokenize_only", |b| {
        b.iter(|| (0..rounds).map(|_| tokenize_objs(&doc)).sum::<usize>())
    });
    group.bench_function("objs_reader", |b| {
        b.iter(|| (0..rounds).map(|_| read_objs(&doc)).sum::<usize>())
    });
    group.finish();
}

/// Best time of `f` over `rounds` runs.
fn best(times: &mut Duration, f: impl FnOnce()) {
    let start = Instant::now();
    f();
    *times = (*times).min(start.elapsed());
}

fn summary() {
    let messages = fs_items::messages(DISTINCT);
    let bytes: usize = messages.iter().map(String::len).sum();
    let options = JsonOptions::default();
    let mut out = Vec::with_capacity(1 << 16);
    let doc = objs_document(&messages);
    let (mut tok, mut dec, mut json) = (Duration::MAX, Duration::MAX, Duration::MAX);
    let (mut doc_tok, mut doc_read) = (Duration::MAX, Duration::MAX);
    for _ in 0..50 {
        best(&mut doc_tok, || {
            black_box(tokenize_objs(&doc));
        });
        best(&mut doc_read, || {
            black_box(read_objs(&doc));
        });
        best(&mut tok, || {
            for m in &messages {
                black_box(tokenize(m));
            }
        });
        best(&mut dec, || {
            for m in &messages {
                black_box(decode(m).unwrap());
            }
        });
        best(&mut json, || {
            for m in &messages {
                out.clear();
                write_json(&mut out, &decode(m).unwrap(), &options).unwrap();
                black_box(&out);
            }
        });
    }
    let line = |what: &str, t: Duration| {
        let s = t.as_secs_f64();
        println!(
            "{what:<22} {:>9.0} objects/s {:>7.1} MB/s",
            DISTINCT as f64 / s,
            bytes as f64 / s / 1e6
        );
    };
    println!("\nsummary: best of 50 interleaved rounds over {DISTINCT} objects ({bytes} bytes)");
    line("tokenize only (floor)", tok);
    line("decode", dec);
    line("decode + JSON", json);
    println!(
        "decode speed / tokenize speed = {:.2}",
        tok.as_secs_f64() / dec.as_secs_f64()
    );
    println!(
        "\n<Objs> document of the same {DISTINCT} objects ({} bytes)",
        doc.len()
    );
    line("tokenize only (floor)", doc_tok);
    line("ObjsReader", doc_read);
    println!(
        "ObjsReader speed / tokenize speed = {:.2}",
        doc_tok.as_secs_f64() / doc_read.as_secs_f64()
    );
}

criterion_group!(benches, bench);

/// `PSRP_BENCH_PASS=tokenize|decode|json|objs_tokenize|objs`: run only
/// that pass, 20 times over the distinct messages (the `objs_` passes: over
/// them as one `<Objs>` document), and exit (for `perf stat`, whose cycle
/// counts other processes on the machine do not disturb).
fn single_pass(pass: &str) {
    let messages = fs_items::messages(DISTINCT);
    let options = JsonOptions::default();
    let mut out = Vec::with_capacity(1 << 16);
    let doc = objs_document(&messages);
    for _ in 0..20 {
        match pass {
            "objs_tokenize" => {
                black_box(tokenize_objs(&doc));
                continue;
            }
            "objs" => {
                black_box(read_objs(&doc));
                continue;
            }
            _ => {}
        }
        for m in &messages {
            match pass {
                "tokenize" => {
                    black_box(tokenize(m));
                }
                "decode" => {
                    black_box(decode(m).unwrap());
                }
                "json" => {
                    out.clear();
                    write_json(&mut out, &decode(m).unwrap(), &options).unwrap();
                    black_box(&out);
                }
                "generate" => {}
                other => panic!("unknown PSRP_BENCH_PASS {other}"),
            }
        }
    }
}

fn main() {
    if let Ok(pass) = std::env::var("PSRP_BENCH_PASS") {
        single_pass(&pass);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Only when benchmarking (not under `cargo test --benches`).
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
}
