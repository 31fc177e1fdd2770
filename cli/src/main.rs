//! The `psrp` command line.

mod command_line;
mod config;
mod params;

fn main() {
    eprintln!("psrp: not implemented yet");
    std::process::exit(64);
}
