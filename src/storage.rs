//! File storage behind one interface (`object_store`): a local folder by default, an
//! S3-compatible bucket for several instances. Uploads first stream to a local staging file
//! (hashed, size-checked, analysed), then move into the store in chunks.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{BoxStream, FuturesUnordered};
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore};
use tokio::io::AsyncReadExt;

use crate::config::StorageConfig;
use crate::error::{Error, Result};

// Part size of multipart uploads (S3 wants at least 5 MiB for every part but the last).
const CHUNK: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    staging: Arc<crate::staging::Staging>,
    /// The local store's folder (backend "local"), where interrupted multipart writes leave
    /// `<key>#<n>` part files that the store's own listing does not show.
    local_root: Option<PathBuf>,
    pub max_upload_bytes: u64,
    /// Bound on what a zipped G-code upload may expand to.
    pub max_unzipped_bytes: u64,
    /// Bound on the bytes staged at once by uploads whose session is not checked yet, and
    /// what they hold now (shared by all requests of this process).
    pub max_before_session_bytes: u64,
    pub staged_before_session: Arc<std::sync::atomic::AtomicU64>,
}

fn storage_error(e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::not_found("File content not found"),
        other if crate::error::is_storage_full(&other) => crate::error::storage_full(),
        other => Error::Internal(format!("storage: {other}")),
    }
}

impl Storage {
    pub fn from_config(cfg: &StorageConfig) -> anyhow::Result<Storage> {
        let store: Arc<dyn ObjectStore> = match cfg.backend.as_str() {
            "s3" => {
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(&cfg.s3_bucket)
                    .with_region(&cfg.s3_region);
                if !cfg.s3_endpoint.is_empty() {
                    b = b
                        .with_endpoint(&cfg.s3_endpoint)
                        .with_allow_http(cfg.s3_endpoint.starts_with("http://"));
                }
                Arc::new(b.build()?)
            }
            _ => {
                std::fs::create_dir_all(&cfg.files_dir).map_err(|e| {
                    anyhow::anyhow!("cannot create the files folder {}: {e}", cfg.files_dir)
                })?;
                Arc::new(
                    object_store::local::LocalFileSystem::new_with_prefix(&cfg.files_dir)?
                        .with_automatic_cleanup(true),
                )
            }
        };
        let staging = crate::staging::Staging::open(Path::new(&cfg.staging_dir)).map_err(|e| {
            anyhow::anyhow!("cannot create the staging folder {}: {e}", cfg.staging_dir)
        })?;
        Ok(Storage {
            store,
            staging: Arc::new(staging),
            local_root: (cfg.backend != "s3").then(|| PathBuf::from(&cfg.files_dir)),
            max_upload_bytes: cfg.max_upload_mb.saturating_mul(1024 * 1024),
            max_unzipped_bytes: cfg.max_unzipped_mb.saturating_mul(1024 * 1024),
            max_before_session_bytes: cfg.max_before_session_mb.saturating_mul(1024 * 1024),
            staged_before_session: Arc::default(),
        })
    }

    /// A scratch file that deletes itself when dropped, so failed uploads leave nothing.
    pub fn staging_file(&self) -> Result<tempfile::NamedTempFile> {
        tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(self.staging.dir())
            .map_err(|e| Error::io("staging file", e))
    }

    /// This process's own staging folder (for scratch folders, e.g. a slice's).
    pub fn staging_dir(&self) -> &Path {
        self.staging.dir()
    }

    /// Removes staging leftovers: the folders of processes that died (at once) and scratch
    /// files older than `max_age`.
    pub fn sweep_staging(&self, max_age: std::time::Duration) -> crate::staging::Swept {
        self.staging.sweep(max_age)
    }

    /// Copies a local file into the store under `key`: in one request up to `CHUNK` bytes,
    /// else as a multipart upload of `CHUNK`-sized parts, two in flight. A multipart upload that
    /// fails is aborted, so no orphaned parts stay behind in an S3 bucket (where they would be
    /// invisible but kept and billed).
    pub async fn put_file(&self, key: &str, path: &Path) -> Result<()> {
        let io = |e: std::io::Error| Error::io("reading staged upload", e);
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        let first = read_chunk(&mut file).await.map_err(io)?;
        let location = ObjectPath::from(key);
        if first.len() < CHUNK {
            self.store
                .put(&location, first.into())
                .await
                .map_err(storage_error)?;
            crate::error::storage_recovered();
            return Ok(());
        }
        let mut upload = self
            .store
            .put_multipart(&location)
            .await
            .map_err(storage_error)?;
        let sent = async {
            let mut in_flight: FuturesUnordered<object_store::UploadPart> = FuturesUnordered::new();
            let mut chunk = first;
            while !chunk.is_empty() {
                if in_flight.len() >= 2 {
                    if let Some(done) = in_flight.next().await {
                        done.map_err(storage_error)?;
                    }
                }
                in_flight.push(upload.put_part(chunk.into()));
                chunk = read_chunk(&mut file).await.map_err(io)?;
                fail::fail_point!("storage-part");
            }
            while let Some(done) = in_flight.next().await {
                done.map_err(storage_error)?;
            }
            upload.complete().await.map_err(storage_error)
        }
        .await;
        if let Err(e) = sent {
            if let Err(abort) = upload.abort().await {
                tracing::warn!(key, error = %abort, "could not abort a failed multipart upload");
            }
            return Err(e);
        }
        crate::error::storage_recovered();
        Ok(())
    }

    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.store
            .put(&ObjectPath::from(key), bytes.into())
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    /// The object's bytes (all, or a range) as a stream, with the object's total size.
    pub async fn get(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<(BoxStream<'static, Result<Bytes>>, u64)> {
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let res = self
            .store
            .get_opts(&ObjectPath::from(key), opts)
            .await
            .map_err(storage_error)?;
        let size = res.meta.size;
        Ok((
            res.into_stream().map(|c| c.map_err(storage_error)).boxed(),
            size,
        ))
    }

    /// Copies an object to a local scratch file (for work that needs random access).
    pub async fn fetch_to_staging(&self, key: &str) -> Result<tempfile::NamedTempFile> {
        use tokio::io::AsyncWriteExt;
        let tmp = self.staging_file()?;
        let mut out =
            tokio::fs::File::from_std(tmp.reopen().map_err(|e| Error::io("staging file", e))?);
        let (mut stream, _) = self.get(key, None).await?;
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk?)
                .await
                .map_err(|e| Error::io("staging file", e))?;
        }
        out.flush()
            .await
            .map_err(|e| Error::io("staging file", e))?;
        Ok(tmp)
    }

    /// Deletes an object; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_error(e)),
        }
    }
}

/// One stored object as a listing shows it.
pub struct Listed {
    pub key: String,
    pub last_modified: chrono::DateTime<chrono::Utc>,
    pub size: u64,
}

impl Storage {
    /// Every object under `prefix` (e.g. "files/"), streamed.
    pub fn list(&self, prefix: &str) -> BoxStream<'static, Result<Listed>> {
        self.store
            .list(Some(&ObjectPath::from(prefix)))
            .map(|m| {
                m.map(|m| Listed {
                    key: m.location.to_string(),
                    last_modified: m.last_modified,
                    size: m.size,
                })
                .map_err(storage_error)
            })
            .boxed()
    }

    /// Whether an object exists.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        match self.store.head(&ObjectPath::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(storage_error(e)),
        }
    }

    /// Deletes the part files (`<key>#<n>`) that an interrupted multipart write leaves in the
    /// local store, once older than `grace`; the store's listing never shows them. On S3 the
    /// same leftovers are incomplete multipart uploads, which a bucket lifecycle rule
    /// (AbortIncompleteMultipartUpload) removes. Returns (files, bytes).
    pub fn sweep_local_parts(&self, grace: std::time::Duration) -> (usize, u64) {
        fn walk(dir: &Path, grace: std::time::Duration, out: &mut (usize, u64)) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let Ok(meta) = e.metadata() else { continue };
                if meta.is_dir() {
                    walk(&e.path(), grace, out);
                    continue;
                }
                let name = e.file_name();
                let is_part = name
                    .to_string_lossy()
                    .rsplit_once('#')
                    .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                let old = meta
                    .modified()
                    .is_ok_and(|t| t.elapsed().unwrap_or_default() >= grace);
                if is_part && old && std::fs::remove_file(e.path()).is_ok() {
                    out.0 += 1;
                    out.1 += meta.len();
                }
            }
        }
        let mut out = (0, 0);
        if let Some(root) = &self.local_root {
            walk(root, grace, &mut out);
        }
        out
    }
}

/// Reads up to `CHUNK` bytes (fewer only at the end of the file).
async fn read_chunk(file: &mut tokio::fs::File) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(CHUNK);
    (&mut *file)
        .take(CHUNK as u64)
        .read_to_end(&mut buf)
        .await?;
    Ok(buf)
}
