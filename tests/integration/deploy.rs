//! The deployment files (issue #19): the systemd units under `deploy/systemd/` pass
//! `systemd-analyze verify` with the binaries this build made, and run commands that exist.

use std::path::Path;
use std::process::Command;

fn systemd_analyze() -> Option<String> {
    let found = crate::common::program("systemd-analyze");
    if found.is_none() {
        let msg = "systemd-analyze is not installed (apt-get install systemd)";
        assert!(
            std::env::var("PRINTFARM_TEST_REQUIRE_PEERS").as_deref() != Ok("1"),
            "PRINTFARM_TEST_REQUIRE_PEERS=1 but {msg}"
        );
        eprintln!("!!! SKIPPING the systemd unit check: {msg}");
    }
    found
}

#[test]
fn systemd_units_verify_and_run_real_commands() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd");
    let tmp = tempfile::tempdir().unwrap();
    let mut units = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("service") {
            continue;
        }
        units += 1;
        // The units name the installed binaries; verify checks they exist and are executable.
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(
                "/usr/local/bin/printfarm-agent",
                env!("CARGO_BIN_EXE_printfarm-agent"),
            )
            .replace("/usr/local/bin/printfarm", env!("CARGO_BIN_EXE_printfarm"));
        let copy = tmp.path().join(path.file_name().unwrap());
        std::fs::write(&copy, &text).unwrap();
        let out = Command::new(&analyze)
            .args(["verify", "--man=no"])
            .arg(&copy)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && said.trim().is_empty(),
            "{}: {said}",
            path.display()
        );
        // Every ExecStart/ExecStartPre runs a command the binary has.
        for line in text.lines().filter(|l| l.starts_with("ExecStart")) {
            let cmd: Vec<&str> = line.split_once('=').unwrap().1.split_whitespace().collect();
            let mut args: Vec<&str> = cmd[1..]
                .iter()
                .copied()
                .take_while(|a| !a.starts_with("--config"))
                .collect();
            args.push("--help");
            let out = Command::new(cmd[0]).args(&args).output().unwrap();
            assert!(
                out.status.success(),
                "{line}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert_eq!(units, 3, "server, worker and agent units");
}

/// The server binary allocates with jemalloc and its own options (src/main.rs): jemalloc
/// prints its options at exit with `stats_print`, and ignores a `malloc_conf` symbol it was not
/// built to read (a prefixed build reads `_rjem_malloc_conf`), so this is what notices.
#[cfg(target_os = "linux")]
#[test]
fn the_server_runs_on_jemalloc_with_one_arena() {
    let out = Command::new(env!("CARGO_BIN_EXE_printfarm"))
        .arg("--version")
        .env("MALLOC_CONF", "stats_print:true")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stats = String::from_utf8_lossy(&out.stderr);
    for option in ["opt.narenas: 1\n", "opt.tcache_max: 1024\n"] {
        assert!(
            stats.contains(option),
            "{option:?} not in jemalloc's stats:\n{stats}"
        );
    }
}
