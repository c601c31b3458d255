//! File storage behind one interface (`object_store`): a local folder by default, an
//! S3-compatible bucket for several instances. Uploads first stream to a local staging file
//! (hashed, size-checked, analysed), then move into the store in chunks.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, WriteMultipart};
use tokio::io::AsyncReadExt;

use crate::config::StorageConfig;
use crate::error::{Error, Result};

const CHUNK: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    staging: PathBuf,
    pub max_upload_bytes: u64,
}

fn storage_error(e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::not_found("File content not found"),
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
        std::fs::create_dir_all(&cfg.staging_dir).map_err(|e| {
            anyhow::anyhow!("cannot create the staging folder {}: {e}", cfg.staging_dir)
        })?;
        Ok(Storage {
            store,
            staging: PathBuf::from(&cfg.staging_dir),
            max_upload_bytes: cfg.max_upload_mb.saturating_mul(1024 * 1024),
        })
    }

    /// A scratch file that deletes itself when dropped, so failed uploads leave nothing.
    pub fn staging_file(&self) -> Result<tempfile::NamedTempFile> {
        tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(&self.staging)
            .map_err(|e| Error::internal(format!("staging file: {e}")))
    }

    /// Copies a local file into the store under `key`, chunk by chunk.
    pub async fn put_file(&self, key: &str, path: &Path) -> Result<()> {
        let upload = self
            .store
            .put_multipart(&ObjectPath::from(key))
            .await
            .map_err(storage_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK);
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::internal(format!("reading staged upload: {e}")))?;
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(Error::internal(format!("reading staged upload: {e}")));
                }
            };
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(2).await.map_err(storage_error)?;
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(storage_error)?;
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
        let mut out = tokio::fs::File::from_std(
            tmp.reopen()
                .map_err(|e| Error::internal(format!("staging file: {e}")))?,
        );
        let (mut stream, _) = self.get(key, None).await?;
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk?)
                .await
                .map_err(|e| Error::internal(format!("staging file: {e}")))?;
        }
        out.flush()
            .await
            .map_err(|e| Error::internal(format!("staging file: {e}")))?;
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
