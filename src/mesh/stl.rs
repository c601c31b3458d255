//! STL (binary and ASCII) through `stl_io`, with our own binary-vs-ASCII decision.
//!
//! `stl_io` picks ASCII whenever the first line starts with `"solid "`, but many binary STLs
//! have an 80-byte header that starts with "solid" too. We decide by the binary size check
//! (84 + 50·n bytes) and then hand `stl_io` a view of the stream whose first bytes make its own
//! probe take the path we chose ([`Spliced`]). A binary-looking file whose size does not match
//! its triangle count is refused as truncated instead of being read partially.

use std::io::{self, Read, Seek, SeekFrom};

use super::weld::WeldingBuilder;
use super::{parse_io_error, stream_len, Mesh, MeshError, MAX_TRIANGLES};

const HEADER_LEN: u64 = 84;
const FACET_LEN: u64 = 50;
/// How far we look for the end of an ASCII STL's first line.
const MAX_FIRST_LINE: usize = 64 * 1024;

pub(super) fn read<R: Read + Seek>(mut reader: R) -> Result<Mesh, MeshError> {
    let len = stream_len(&mut reader)?;
    let mut head = Vec::with_capacity(MAX_FIRST_LINE.min(len as usize));
    (&mut reader)
        .take(MAX_FIRST_LINE as u64)
        .read_to_end(&mut head)?;
    reader.seek(SeekFrom::Start(0))?;

    let binary_count = (head.len() as u64 >= HEADER_LEN)
        .then(|| u64::from(u32::from_le_bytes([head[80], head[81], head[82], head[83]])));
    if let Some(n) = binary_count {
        if HEADER_LEN + FACET_LEN * n == len {
            return read_binary(reader, len, n);
        }
    }
    if let Some(first_line_end) = ascii_first_line_end(&head) {
        return read_ascii(reader, len, first_line_end).map_err(|e| match (e, binary_count) {
            (MeshError::Unreadable(msg), Some(n)) => MeshError::Unreadable(format!(
                "neither a valid ASCII STL ({msg}) nor a binary STL (its header would announce \
                 {n} triangles = {} bytes, the file has {len} bytes)",
                HEADER_LEN + FACET_LEN * n
            )),
            (e, _) => e,
        });
    }
    match binary_count {
        None => Err(MeshError::Unreadable(format!(
            "not an STL file: {len} bytes is shorter than a binary STL header and it does not \
             start with \"solid\""
        ))),
        Some(n) => {
            let expected = HEADER_LEN + FACET_LEN * n;
            let what = if len < expected {
                "truncated binary STL"
            } else {
                "not a binary STL (or one with trailing bytes)"
            };
            Err(MeshError::Unreadable(format!(
                "{what}: the header announces {n} triangles, which needs {expected} bytes, but \
                 the file has {len} bytes"
            )))
        }
    }
}

/// If `head` starts like an ASCII STL (optional BOM and whitespace, then the keyword `solid`
/// followed by whitespace or the end of the line), the offset just past its first line.
pub(super) fn ascii_first_line_end(head: &[u8]) -> Option<usize> {
    let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let skipped = head.len() - body.len();
    let ws = body.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let rest = &body[ws..];
    if rest.len() < 5 || !rest[..5].eq_ignore_ascii_case(b"solid") {
        return None;
    }
    match rest.get(5) {
        None => return Some(head.len()),
        Some(b) if b.is_ascii_whitespace() => {}
        Some(_) => return None,
    }
    let start = skipped + ws + 5;
    head[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| start + p + 1)
        .or((head.len() < MAX_FIRST_LINE).then_some(head.len()))
}

fn read_binary<R: Read + Seek>(reader: R, len: u64, n: u64) -> Result<Mesh, MeshError> {
    if n as usize > MAX_TRIANGLES {
        return Err(MeshError::Unreadable(format!(
            "binary STL with {n} triangles is larger than the limit of {MAX_TRIANGLES}"
        )));
    }
    // A header that cannot pass for ASCII; stl_io skips the 80 header bytes anyway.
    let mut prefix = vec![b' '; 80];
    prefix[0] = b'\n';
    let mut view = Spliced::new(reader, prefix, 80, len)?;
    let triangles =
        stl_io::create_stl_reader(&mut view).map_err(|e| parse_io_error("binary STL", e))?;
    let mut builder = WeldingBuilder::new(n as usize);
    for (i, t) in triangles.enumerate() {
        let t = t.map_err(|e| parse_io_error("binary STL", e))?;
        let corners = t.vertices.map(|v| v.0);
        if corners.iter().flatten().any(|c| !c.is_finite()) {
            return Err(MeshError::Unreadable(format!(
                "binary STL: triangle {i} has a non-finite coordinate"
            )));
        }
        if !builder.push(corners) {
            return Err(MeshError::Unreadable(
                "binary STL: too many vertices".into(),
            ));
        }
    }
    Ok(builder.finish())
}

fn read_ascii<R: Read + Seek>(
    reader: R,
    len: u64,
    first_line_end: usize,
) -> Result<Mesh, MeshError> {
    // stl_io wants exactly "solid " at the very start; present the first line as that.
    let mut view = Spliced::new(reader, b"solid \n".to_vec(), first_line_end as u64, len)?;
    let triangles =
        stl_io::create_stl_reader(&mut view).map_err(|e| parse_io_error("ASCII STL", e))?;
    let mut builder = WeldingBuilder::new(0);
    for t in triangles {
        let t = t.map_err(|e| parse_io_error("ASCII STL", e))?;
        if builder.triangle_count() >= MAX_TRIANGLES {
            return Err(MeshError::Unreadable(format!(
                "ASCII STL with more than {MAX_TRIANGLES} triangles"
            )));
        }
        if !builder.push(t.vertices.map(|v| v.0)) {
            return Err(MeshError::Unreadable("ASCII STL: too many vertices".into()));
        }
    }
    Ok(builder.finish())
}

/// A read-only view of `prefix` followed by `inner[skip..]`.
struct Spliced<R> {
    inner: R,
    prefix: Vec<u8>,
    skip: u64,
    /// Length of the whole view.
    len: u64,
    /// Position in the view. Invariant: `inner` is at `skip + pos.saturating_sub(prefix.len())`.
    pos: u64,
}

impl<R: Read + Seek> Spliced<R> {
    fn new(mut inner: R, prefix: Vec<u8>, skip: u64, inner_len: u64) -> io::Result<Self> {
        let skip = skip.min(inner_len);
        inner.seek(SeekFrom::Start(skip))?;
        let len = prefix.len() as u64 + (inner_len - skip);
        Ok(Spliced {
            inner,
            prefix,
            skip,
            len,
            pos: 0,
        })
    }
}

impl<R: Read + Seek> Read for Spliced<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let plen = self.prefix.len() as u64;
        if self.pos < plen {
            let from = &self.prefix[self.pos as usize..];
            let n = from.len().min(buf.len());
            buf[..n].copy_from_slice(&from[..n]);
            self.pos += n as u64;
            return Ok(n);
        }
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for Spliced<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before start"))?;
        let plen = self.prefix.len() as u64;
        self.inner
            .seek(SeekFrom::Start(self.skip + target.saturating_sub(plen)))?;
        self.pos = target;
        Ok(target)
    }
}
