//! Links the binaries with packed relative relocations (DT_RELR) when the toolchain and the C
//! library support them. The server is position independent, so the loader writes ~60,000
//! relative relocations at start: as RELA entries they are 1.4 MiB of table read into memory
//! on every start (issue #20 goal 5); packed they are a few KiB. Probed rather than assumed: an
//! older linker refuses the flag, and an older glibc (< 2.36) cannot load such a binary.

use std::path::PathBuf;
use std::process::Command;

const FLAG: &str = "-Wl,-z,pack-relative-relocs";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    // The probe runs what it linked: only when building for this machine.
    if target != host || !target.contains("linux-gnu") {
        return;
    }
    if packed_relocations_work() {
        println!("cargo:rustc-link-arg-bins={FLAG}");
    }
}

fn packed_relocations_work() -> bool {
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return false;
    };
    let source = out.join("relr_probe.c");
    let program = out.join("relr_probe");
    // A pointer in initialized data: a relative relocation for the loader to apply.
    let text = "static const char *s = \"ok\"; int main(void) { return s[0] == 'o' ? 0 : 1; }\n";
    if std::fs::write(&source, text).is_err() {
        return false;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let linked = Command::new(cc)
        .args(["-fPIE", "-pie", FLAG, "-o"])
        .arg(&program)
        .arg(&source)
        .output()
        .is_ok_and(|o| o.status.success());
    linked && Command::new(&program).status().is_ok_and(|s| s.success())
}
