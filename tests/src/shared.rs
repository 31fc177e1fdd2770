//! Locating the real Windows captures (`shared/real-windows`, beside the
//! repository and never copied into it).

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
