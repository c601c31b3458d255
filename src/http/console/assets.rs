//! The console's static files, embedded in the binary. Each is served under a name carrying
//! a hash of its content (`/assets/console.1a2b3c4d5e.css`), so browsers may keep it for a
//! year and a new build is fetched at once; gzip-compressed when the browser accepts it.

use std::io::Write;
use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

struct Source {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const SOURCES: &[Source] = &[
    Source {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../assets/console.css"),
    },
    Source {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../assets/console.js"),
    },
];

pub struct Asset {
    /// The path it is served at.
    pub path: String,
    content_type: &'static str,
    body: &'static [u8],
    gzip: Vec<u8>,
    etag: String,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|s| {
            let hash = hex::encode(Sha256::digest(s.body));
            let (stem, ext) = s.name.rsplit_once('.').unwrap_or((s.name, ""));
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(s.body).expect("gzip into memory");
            Asset {
                path: format!("/assets/{stem}.{}.{ext}", &hash[..10]),
                content_type: s.content_type,
                body: s.body,
                gzip: gz.finish().expect("gzip into memory"),
                etag: format!("\"{}\"", &hash[..16]),
            }
        })
        .collect()
});

/// The served path of an embedded file (`console.css` → `/assets/console.<hash>.css`).
pub fn url(name: &str) -> &'static str {
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    ASSETS
        .iter()
        .find(|a| {
            a.path.starts_with(&format!("/assets/{stem}.")) && a.path.ends_with(&format!(".{ext}"))
        })
        .map_or("/assets/missing", |a| a.path.as_str())
}

pub async fn serve(req: HttpRequest, file: web::Path<String>) -> HttpResponse {
    let path = format!("/assets/{file}");
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("No such file");
    };
    let mut res = HttpResponse::Ok();
    res.content_type(asset.content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .insert_header((header::ETAG, asset.etag.clone()))
        .insert_header((header::VARY, "Accept-Encoding"))
        .insert_header(("X-Content-Type-Options", "nosniff"));
    let gzip_ok = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    if gzip_ok {
        res.insert_header((header::CONTENT_ENCODING, "gzip"))
            .body(asset.gzip.clone())
    } else {
        res.body(asset.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_fingerprinted_path() {
        let css = url("console.css");
        assert!(
            css.starts_with("/assets/console.") && css.ends_with(".css"),
            "{css}"
        );
        assert_eq!(css.len(), "/assets/console.".len() + 10 + ".css".len());
        assert!(url("console.js").ends_with(".js"));
        assert_eq!(url("nope.txt"), "/assets/missing");
    }
}
