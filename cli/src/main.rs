//! The `psrp` command line.

fn main() {
    eprintln!("psrp: not implemented yet");
    std::process::exit(64);
}
