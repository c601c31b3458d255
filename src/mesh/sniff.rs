//! Content sniffing: which mesh format some bytes really are.

use super::stl::ascii_first_line_end;
use super::MeshFormat;

/// How many leading bytes [`sniff`] should be given for a reliable answer (more is fine).
pub const SNIFF_LEN: usize = 64 * 1024;

/// Content sniffing for uploads: which mesh format the bytes really are.
///
/// `head` is the start of the file (ideally [`SNIFF_LEN`] bytes, or all of a smaller file) and
/// `total_len` the size of the whole file.
///
/// * Binary STL: an 84-byte header whose triangle count n gives exactly 84 + 50·n = `total_len`
///   (whatever the header text, so binary files whose header starts with "solid" count).
/// * ASCII STL: starts with `solid` and has a `facet` (or `endsolid`) in `head`.
/// * 3MF: a zip archive (local file header magic) that names a model part in `head`
///   (`3D/3dmodel.model`, or any `*.model` entry: some writers use `3D/model.model`); when `head`
///   is only the start of a larger file and no such name is in it (a large thumbnail may come
///   first), an OPC package (`[Content_Types].xml`) is accepted and left to the reader to check.
/// * OBJ: text whose lines are all OBJ statements (`v vt vn vp f l p o g s mtllib usemtl`, `#`
///   comments, blank lines) with at least one `v`.
///
/// Anything else (G-code, images, random bytes, a truncated binary STL) is `None`.
pub fn sniff(head: &[u8], total_len: u64) -> Option<MeshFormat> {
    if head.is_empty() || total_len == 0 {
        return None;
    }
    let complete = head.len() as u64 >= total_len;
    if head.len() >= 84 {
        let n = u64::from(u32::from_le_bytes([head[80], head[81], head[82], head[83]]));
        if 84 + 50 * n == total_len {
            return Some(MeshFormat::Stl);
        }
    }
    if head.starts_with(b"PK\x03\x04") {
        return looks_like_3mf(head, complete).then_some(MeshFormat::ThreeMf);
    }
    if ascii_first_line_end(head).is_some() {
        return (contains(head, b"facet") || contains(head, b"endsolid"))
            .then_some(MeshFormat::Stl);
    }
    looks_like_obj(head, complete).then_some(MeshFormat::Obj)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn looks_like_3mf(head: &[u8], complete: bool) -> bool {
    if contains_ignore_case(head, b"3D/3dmodel.model") || contains_ignore_case(head, b".model") {
        return true;
    }
    !complete && contains(head, b"[Content_Types].xml")
}

const OBJ_KEYWORDS: &[&str] = &[
    "v", "vt", "vn", "vp", "f", "l", "p", "o", "g", "s", "mtllib", "usemtl",
];

fn looks_like_obj(head: &[u8], complete: bool) -> bool {
    if head.contains(&0) {
        return false;
    }
    // When `head` is cut, its last line may be cut too: look only at complete lines.
    let text = if complete {
        head
    } else {
        match head.iter().rposition(|&b| b == b'\n') {
            Some(p) => &head[..p],
            None => return false,
        }
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return false;
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut vertices = 0usize;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let keyword = line.split_ascii_whitespace().next().unwrap_or("");
        if !OBJ_KEYWORDS.contains(&keyword) {
            return false;
        }
        if keyword == "v" {
            vertices += 1;
        }
    }
    vertices > 0
}
