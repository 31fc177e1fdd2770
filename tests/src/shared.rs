//! Locating the real Windows captures (`shared/real-windows`, beside the
//! repository and never copied into it) and the cases of CLIXML corpora.

use std::path::{Path, PathBuf};

/// `shared/real-windows`: `$PSRP_SHARED_DIR/real-windows` when
/// `PSRP_SHARED_DIR` is set, else the first `shared/real-windows` folder
/// found walking up from the repository.
///
/// # Panics
///
/// When there is none: the tests that read the captures must fail, not
/// pass silently without their data.
pub fn real_windows_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PSRP_SHARED_DIR") {
        let dir = PathBuf::from(dir).join("real-windows");
        assert!(
            dir.is_dir(),
            "PSRP_SHARED_DIR has no real-windows folder: {}",
            dir.display()
        );
        return dir;
    }
    let start = Path::new(env!("CARGO_MANIFEST_DIR"));
    start
        .ancestors()
        .map(|d| d.join("shared").join("real-windows"))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "no shared/real-windows folder above {} and PSRP_SHARED_DIR is not set: \
                 the real Windows captures are required (set PSRP_SHARED_DIR to the shared folder)",
                start.display()
            )
        })
}

/// The names (without `.xml`) of the `<name>.xml` files in `dir`, sorted:
/// the cases of a CLIXML corpus, each beside its `<name>.expected.json`.
///
/// # Panics
///
/// When `dir` cannot be read.
pub fn xml_case_names(dir: &Path) -> Vec<String> {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    let mut names: Vec<String> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".xml").map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}
