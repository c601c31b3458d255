//! The agent's G-code download against a misbehaving file server: resume with
//! `Range: bytes=N-` after a cut connection, a server that ignores ranges, a missing
//! Content-Length, permanent errors and exhausted retries.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use printfarm::agent::download::{download, DownloadError, Progress, MAX_RETRIES};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Honours Range; the first `cuts` answers stop half way.
    Cut,
    /// Always answers 200 with everything (no Range support); the first answer is cut.
    IgnoreRange,
    /// Chunked, without Content-Length.
    NoLength,
    /// Always cut.
    AlwaysCut,
    NotFound,
}

struct Files {
    data: Vec<u8>,
    mode: Mode,
    cuts: usize,
    hits: AtomicUsize,
    ranges: Mutex<Vec<Option<String>>>,
}

fn cut_stream(
    bytes: Vec<u8>,
) -> impl futures_util::Stream<Item = Result<web::Bytes, std::io::Error>> {
    let half = bytes.len() / 2;
    futures_util::stream::iter(vec![
        Ok(web::Bytes::from(bytes[..half].to_vec())),
        Err(std::io::Error::other("cut")),
    ])
}

async fn serve(req: HttpRequest, st: web::Data<Files>) -> HttpResponse {
    let n = st.hits.fetch_add(1, Ordering::SeqCst);
    let range = req
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    st.ranges.lock().unwrap().push(range.clone());
    let total = st.data.len();
    let start = match (st.mode, &range) {
        (Mode::Cut | Mode::AlwaysCut, Some(r)) => r
            .trim_start_matches("bytes=")
            .trim_end_matches('-')
            .parse::<usize>()
            .unwrap(),
        _ => 0,
    };
    let body = st.data[start..].to_vec();
    let cut = st.mode == Mode::AlwaysCut || n < st.cuts;
    let mut res = if start > 0 {
        let mut r = HttpResponse::PartialContent();
        r.insert_header((
            "content-range",
            format!("bytes {start}-{}/{total}", total - 1),
        ));
        r
    } else {
        HttpResponse::Ok()
    };
    match st.mode {
        Mode::NotFound => HttpResponse::NotFound().body("no such file"),
        Mode::NoLength => res.streaming(futures_util::stream::iter(vec![Ok::<_, std::io::Error>(
            web::Bytes::from(body),
        )])),
        _ if cut => res
            .no_chunking(body.len() as u64)
            .streaming(cut_stream(body)),
        _ => res.body(body),
    }
}

async fn start(mode: Mode, cuts: usize) -> (String, Arc<web::Data<Files>>, Vec<u8>) {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let files = web::Data::new(Files {
        data: data.clone(),
        mode,
        cuts,
        hits: AtomicUsize::new(0),
        ranges: Mutex::new(Vec::new()),
    });
    let shared = files.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(files.clone())
            .default_service(web::to(serve))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    (
        format!("http://127.0.0.1:{port}/f.gcode"),
        Arc::new(shared),
        data,
    )
}

async fn fetch(url: &str) -> (Result<u64, DownloadError>, Vec<u8>, Arc<Progress>) {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.gcode");
    let progress = Arc::new(Progress::default());
    let client = reqwest::Client::new();
    let r = download(&client, url, &dest, &progress, Duration::from_millis(10)).await;
    let got = std::fs::read(&dest).unwrap_or_default();
    (r, got, progress)
}

#[actix_web::test]
async fn resumes_after_cut_connections() {
    let (url, files, data) = start(Mode::Cut, 2).await;
    let (r, got, progress) = fetch(&url).await;
    assert_eq!(r.unwrap(), data.len() as u64);
    assert!(got == data, "content differs");
    assert_eq!(progress.percent(), 100.0);
    let ranges = files.ranges.lock().unwrap().clone();
    assert_eq!(ranges.len(), 3);
    assert_eq!(ranges[0], None);
    // Each retry asks for the rest only.
    assert_eq!(ranges[1].as_deref(), Some("bytes=100000-"));
    assert_eq!(ranges[2].as_deref(), Some("bytes=150000-"));
}

#[actix_web::test]
async fn restarts_when_ranges_are_ignored() {
    let (url, files, data) = start(Mode::IgnoreRange, 1).await;
    let (r, got, _) = fetch(&url).await;
    assert_eq!(r.unwrap(), data.len() as u64);
    assert!(got == data, "content differs");
    assert_eq!(files.hits.load(Ordering::SeqCst), 2);
}

#[actix_web::test]
async fn requires_content_length() {
    let (url, _, _) = start(Mode::NoLength, 0).await;
    let (r, _, _) = fetch(&url).await;
    let e = r.unwrap_err();
    assert!(matches!(e, DownloadError::Size(_)), "{e}");
    assert_eq!(e.code(), 66);
}

#[actix_web::test]
async fn gives_up() {
    // A 404 is final at once.
    let (url, files, _) = start(Mode::NotFound, 0).await;
    let e = fetch(&url).await.0.unwrap_err();
    assert_eq!(e.code(), 65, "{e}");
    assert_eq!(files.hits.load(Ordering::SeqCst), 1);
    // A transfer that never completes: 1 try + MAX_RETRIES retries.
    let (url, files, _) = start(Mode::AlwaysCut, 0).await;
    let e = fetch(&url).await.0.unwrap_err();
    // Reported as a transfer failure (65) or a short file (66), depending on how it broke.
    assert!(matches!(e.code(), 65 | 66), "{e}");
    assert_eq!(files.hits.load(Ordering::SeqCst), 1 + MAX_RETRIES as usize);
    // Nobody listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = fetch(&format!("http://127.0.0.1:{port}/x"))
        .await
        .0
        .unwrap_err();
    assert_eq!(e.code(), 65, "{e}");
}
