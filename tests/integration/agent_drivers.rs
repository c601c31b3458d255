//! The OctoPrint and Moonraker drivers against the REAL peers (tests/peers): OctoPrint
//! with its virtual printer, Moonraker with the stand-in Klippy. Each test starts its own
//! peer on a free loopback port and stops it afterwards.
//!
//! The peers install themselves on first use (`peers::provision`, from PyPI under
//! `target/peers`); when that cannot be done the tests print a loud SKIPPING line and pass —
//! unless `PRINTFARM_TEST_REQUIRE_PEERS=1` (CI), which makes it a failure.

use crate::peers;

use std::time::Duration;

use printfarm::agent::driver::{Driver, DriverError, DriverState, Moonraker, OctoPrint};

use peers::{wait_state, Peer};

const CUBE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/cube_20mm.gcode");

fn tiny_gcode(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let p = dir.join(format!("tiny{}.gcode", extra.len()));
    std::fs::write(&p, format!("M104 S0\nG28\nG1 X10 Y10\nG1 X20 Y20\n{extra}")).unwrap();
    p
}

/// A G-code of a few MiB whose every line differs, so a dropped, repeated or reordered
/// chunk of the streamed upload shows.
fn big_gcode(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    let mut text = String::new();
    let mut i = 0u64;
    while text.len() < 6 << 20 {
        text.push_str(&format!("G1 X{} Y{} ; line {i}\n", i % 200, (i * 7) % 200));
        i += 1;
    }
    let p = dir.join("big.gcode");
    std::fs::write(&p, &text).unwrap();
    (p, text.into_bytes())
}

/// Uploads are streamed from disk: a large file arrives byte for byte, and a missing local
/// file is an error, not a panic.
async fn check_streamed_upload(
    d: &impl Driver,
    download: impl std::future::Future<Output = Vec<u8>>,
) {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = big_gcode(dir.path());
    d.upload(&path, "pf9_big.gcode").await.unwrap();
    assert!(download.await == bytes, "the uploaded file differs");
    assert!(matches!(
        d.upload(&dir.path().join("missing.gcode"), "pf9_missing.gcode")
            .await,
        Err(DriverError::Other(_))
    ));
}

async fn fetch(url: String, key: Option<&str>) -> Vec<u8> {
    let mut req = reqwest::Client::new().get(url);
    if let Some(k) = key {
        req = req.header("X-Api-Key", k);
    }
    let res = req.send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    res.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn octoprint_driver_against_real_octoprint() {
    let Some(peer) = Peer::start("octoprint", &[]) else {
        return;
    };
    let d = OctoPrint::new(
        &peer.env["OCTOPRINT_URL"],
        &peer.env["OCTOPRINT_API_KEY"],
        Some("VIRTUAL".into()),
        Duration::from_secs(10),
    )
    .unwrap();

    // Not connected to its (virtual) serial printer yet.
    let s = d.status().await.unwrap();
    assert_eq!(s.state, DriverState::Offline, "{s:?}");
    d.connect().await.unwrap();
    wait_state(&d, &[DriverState::Idle], 30).await;
    // Temperatures arrive with the first M105 answers after connecting.
    let mut s = d.status().await.unwrap();
    for _ in 0..50 {
        if s.temps[0] > 0.0 && s.temps[1] > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        s = d.status().await.unwrap();
    }
    assert!(s.temps[0] > 0.0 && s.temps[1] > 0.0, "{s:?}");
    d.connect().await.unwrap(); // connected already: no-op

    // Wrong-state operations are refused, not panics or hangs.
    assert!(matches!(d.pause().await, Err(DriverError::Refused(_))));
    assert!(matches!(d.cancel().await, Err(DriverError::Refused(_))));
    assert!(d.start("pf0_missing.gcode").await.is_err());

    // A short job runs to completion and is reported as finished.
    let dir = tempfile::tempdir().unwrap();
    d.upload(&tiny_gcode(dir.path(), ""), "pf1_tiny.gcode")
        .await
        .unwrap();
    d.start("pf1_tiny.gcode").await.unwrap();
    let s = wait_state(&d, &[DriverState::Finished], 30).await;
    assert_eq!(s.percent, 100.0);
    assert_eq!(s.job_file.as_deref(), Some("pf1_tiny.gcode"));
    let url = format!(
        "{}/downloads/files/local/pf9_big.gcode",
        peer.env["OCTOPRINT_URL"]
    );
    check_streamed_upload(&d, fetch(url, Some(&peer.env["OCTOPRINT_API_KEY"]))).await;

    // The cube takes minutes on the virtual printer: pause, resume, cancel it.
    d.upload(std::path::Path::new(CUBE), "pf2_cube.gcode")
        .await
        .unwrap();
    d.start("pf2_cube.gcode").await.unwrap();
    let s = wait_state(&d, &[DriverState::Printing], 30).await;
    assert_eq!(s.job_file.as_deref(), Some("pf2_cube.gcode"));
    assert!(
        d.start("pf2_cube.gcode").await.is_err(),
        "start while printing"
    );
    d.pause().await.unwrap();
    let paused = wait_state(&d, &[DriverState::Paused], 30).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let still = d.status().await.unwrap();
    assert_eq!(still.state, DriverState::Paused);
    assert_eq!(still.percent, paused.percent, "no progress while paused");
    d.resume().await.unwrap();
    wait_state(&d, &[DriverState::Printing], 30).await;
    d.cancel().await.unwrap();
    // Cancelling, then idle with the file still selected (the agent infers the cancel).
    let s = wait_state(&d, &[DriverState::Idle], 30).await;
    assert_eq!(s.job_file.as_deref(), Some("pf2_cube.gcode"));
    assert_ne!(s.percent, 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moonraker_driver_against_real_moonraker() {
    let Some(peer) = Peer::start("moonraker", &[("FAKE_KLIPPY_SECONDS_PER_KB", "1.5")]) else {
        return;
    };
    let d = Moonraker::new(&peer.env["MOONRAKER_URL"], None, Duration::from_secs(10)).unwrap();
    d.connect().await.unwrap();
    let s = wait_state(&d, &[DriverState::Idle], 30).await;
    assert!(s.temps[1] > 0.0, "{s:?}");

    assert!(matches!(d.pause().await, Err(DriverError::Refused(_))));
    assert!(matches!(d.cancel().await, Err(DriverError::Refused(_))));
    assert!(d.start("pf0_missing.gcode").await.is_err());

    let dir = tempfile::tempdir().unwrap();
    d.upload(&tiny_gcode(dir.path(), ""), "pf1_tiny.gcode")
        .await
        .unwrap();
    d.start("pf1_tiny.gcode").await.unwrap();
    let s = wait_state(&d, &[DriverState::Finished], 30).await;
    assert_eq!(s.percent, 100.0);
    assert_eq!(s.job_file.as_deref(), Some("pf1_tiny.gcode"));
    let url = format!(
        "{}/server/files/gcodes/pf9_big.gcode",
        peer.env["MOONRAKER_URL"]
    );
    check_streamed_upload(&d, fetch(url, None)).await;

    // The stand-in Klippy fails files that ask for it.
    d.upload(
        &tiny_gcode(dir.path(), "; printfarm:fail\n"),
        "pf2_fail.gcode",
    )
    .await
    .unwrap();
    d.start("pf2_fail.gcode").await.unwrap();
    let s = wait_state(&d, &[DriverState::Failed], 30).await;
    assert!(s.message.unwrap_or_default().contains("fail"));

    // The cube lasts ~4 minutes at 1.5 s/KiB: pause, resume, cancel.
    d.upload(std::path::Path::new(CUBE), "pf3_cube.gcode")
        .await
        .unwrap();
    d.start("pf3_cube.gcode").await.unwrap();
    let s = wait_state(&d, &[DriverState::Printing], 30).await;
    assert_eq!(s.job_file.as_deref(), Some("pf3_cube.gcode"));
    assert_eq!(s.target_temps, [60.0, 215.0]);
    assert!(d.start("pf3_cube.gcode").await.is_err(), "SD busy");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let s = d.status().await.unwrap();
    assert!(s.percent > 0.0 && s.percent < 100.0, "{s:?}");
    d.pause().await.unwrap();
    let paused = wait_state(&d, &[DriverState::Paused], 30).await;
    assert!(
        matches!(d.pause().await, Err(DriverError::Refused(_))),
        "already paused"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(d.status().await.unwrap().percent, paused.percent);
    d.resume().await.unwrap();
    wait_state(&d, &[DriverState::Printing], 30).await;
    d.cancel().await.unwrap();
    let s = wait_state(&d, &[DriverState::Cancelled], 30).await;
    assert_eq!(s.job_file.as_deref(), Some("pf3_cube.gcode"));
}

#[tokio::test]
async fn drivers_report_unreachable_printers() {
    // A port nobody listens on: status is an error (the agent reports "connecting").
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let o = OctoPrint::new(&url, "k", None, Duration::from_secs(2)).unwrap();
    assert!(matches!(o.status().await, Err(DriverError::Unreachable(_))));
    assert!(matches!(
        o.connect().await,
        Err(DriverError::Unreachable(_))
    ));
    let m = Moonraker::new(&url, None, Duration::from_secs(2)).unwrap();
    assert!(matches!(m.status().await, Err(DriverError::Unreachable(_))));
    assert!(matches!(m.pause().await, Err(DriverError::Unreachable(_))));
}

/// Moonraker's Spoolman integration, all real: a Spoolman with two spools, a Moonraker whose
/// `[spoolman]` points at it. The material follows the active spool (set through Moonraker's
/// own `/server/spoolman/spool_id`, as Mainsail and Fluidd do), a multi-colour filament
/// reports its first colour, no active spool is "not known", and a Spoolman that went away
/// is an error rather than a stale answer from a fresh driver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moonraker_materials_follow_the_active_spoolman_spool() {
    use printfarm::agent::driver::Material;
    let Some(spoolman) = Peer::start("spoolman", &[]) else {
        return;
    };
    let api = format!("{}/api/v1", spoolman.env["SPOOLMAN_URL"]);
    let http = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        let req = http.post(format!("{api}/{path}")).json(&body);
        async move {
            let res = req.send().await.unwrap();
            assert!(res.status().is_success(), "{}", res.status());
            res.json::<serde_json::Value>().await.unwrap()["id"]
                .as_i64()
                .unwrap()
        }
    };
    let petg = post(
        "filament",
        serde_json::json!({"name": "Galaxy Blue", "material": "PETG", "color_hex": "1E90FF",
                           "density": 1.27, "diameter": 1.75}),
    )
    .await;
    let silk = post(
        "filament",
        serde_json::json!({"name": "Silk Duo", "material": " PLA ", "density": 1.24,
                           "diameter": 1.75, "multi_color_hexes": "FF0000,00FF00",
                           "multi_color_direction": "coaxial"}),
    )
    .await;
    let petg_spool = post("spool", serde_json::json!({"filament_id": petg})).await;
    let silk_spool = post("spool", serde_json::json!({"filament_id": silk})).await;

    let Some(peer) = Peer::start(
        "moonraker",
        &[("SPOOLMAN_URL", spoolman.env["SPOOLMAN_URL"].as_str())],
    ) else {
        return;
    };
    let base = peer.env["MOONRAKER_URL"].clone();
    let d = Moonraker::new(&base, None, Duration::from_secs(10)).unwrap();
    d.connect().await.unwrap();
    assert_eq!(d.materials().await.unwrap(), vec![], "no spool active yet");

    // Clearing sends no `spool_id` at all: Moonraker reads a JSON null as a bad integer.
    let activate = |id: Option<i64>| {
        let body = match id {
            Some(id) => serde_json::json!({ "spool_id": id }),
            None => serde_json::json!({}),
        };
        let req = http
            .post(format!("{base}/server/spoolman/spool_id"))
            .json(&body);
        async move {
            let res = req.send().await.unwrap();
            assert!(res.status().is_success(), "{}", res.status());
        }
    };
    activate(Some(petg_spool)).await;
    assert_eq!(
        d.materials().await.unwrap(),
        vec![Material {
            material: Some("PETG".into()),
            color_hex: Some("#1E90FF".into()),
        }]
    );
    activate(Some(silk_spool)).await;
    assert_eq!(
        d.materials().await.unwrap(),
        vec![Material {
            material: Some("PLA".into()),
            color_hex: Some("#FF0000".into()),
        }],
        "a spool change is seen at once; a multi-colour filament gives its first colour"
    );
    activate(None).await;
    assert_eq!(d.materials().await.unwrap(), vec![]);

    activate(Some(petg_spool)).await;
    drop(spoolman);
    let fresh = Moonraker::new(&base, None, Duration::from_secs(10)).unwrap();
    assert!(
        fresh.materials().await.is_err(),
        "Spoolman gone: not known, and said so"
    );
}
