//! Builds the stand-in NVML (`hwtests/nvml-standin/nvml_standin.c`) with
//! the system's C compiler, once per test binary.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The stand-in library's path, compiling it on first use into `dir`.
pub fn standin_nvml(dir: &Path) -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("hwtests/nvml-standin/nvml_standin.c");
        std::fs::create_dir_all(dir).expect("stand-in dir");
        let out = dir.join("libnvidia-ml-standin.so");
        // Each test binary compiles its own copy under a unique name, then
        // renames it into place: other binaries may be loading `out` now.
        let tmp = dir.join(format!("libnvidia-ml-standin.{}.so", std::process::id()));
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let st = std::process::Command::new(&cc)
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
            .arg(&tmp)
            .arg(&src)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {cc} to build the stand-in NVML: {e}"));
        assert!(st.success(), "{cc} failed on {}", src.display());
        std::fs::rename(&tmp, &out).expect("rename stand-in");
        out
    })
    .clone()
}
