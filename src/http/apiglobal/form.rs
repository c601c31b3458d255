//! Lenient request-parameter decoding for the 3DPrinterOS Global API.
//!
//! Legacy clients POST `application/x-www-form-urlencoded` bodies under any content type (or none),
//! some send JSON, and lists/maps arrive in half a dozen PHP-isms (`ids[]=1`, `ids=1,2`, `ids=[1,2]`,
//! `updates[12][ptype]=5`, ...). Handlers should not care which: they ask [`Params`] for a typed value
//! and get either the value or a [`FormError`] that the HTTP layer turns into a 400.
//!
//! Rules shared by every accessor:
//! - for plain scalars the first occurrence wins (body before query string, as pairs are appended);
//! - "blank" text (empty, `null`, `undefined`) means "not given", because legacy clients send those;
//! - nothing panics on any input, and bodies are bounded to `MAX_DEPTH` nesting and `MAX_PAIRS`
//!   pairs so a hostile body cannot blow up memory or the stack.

use std::collections::HashMap;

use serde_json::Value;

/// Deepest nesting below a top-level name (`a[1][2]...`, or JSON containers); real requests use 2-3.
const MAX_DEPTH: usize = 8;
/// Most pairs (form) or values (JSON) one request may carry.
const MAX_PAIRS: usize = 10_000;

pub(crate) const EXPECTED_INTEGER: &str = "an integer";
pub(crate) const EXPECTED_NUMBER: &str = "a number";
pub(crate) const EXPECTED_BOOLEAN: &str = "a boolean (1/0, true/false, on/off)";
const EXPECTED_INTEGER_LIST: &str = "an integer or a list of integers";
pub(crate) const EXPECTED_JSON: &str = "valid JSON";

/// Why a parameter was refused; the HTTP layer turns it into a 400 `{"result":false,"message":...}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("missing required parameter '{0}'")]
    Missing(String),
    #[error("parameter '{name}' must be {expected}")]
    Invalid {
        name: String,
        expected: &'static str,
    },
    #[error("malformed request body: {0}")]
    Malformed(String),
    /// A typed parameter's own refusal (e.g. a value not in its list), said as it is.
    #[error("{0}")]
    Refused(String),
}

impl From<FormError> for crate::error::Error {
    fn from(e: FormError) -> Self {
        crate::error::Error::Invalid(e.to_string())
    }
}

fn invalid(name: &str, expected: &'static str) -> FormError {
    FormError::Invalid {
        name: name.to_owned(),
        expected,
    }
}

fn too_deep() -> FormError {
    FormError::Malformed(format!(
        "parameters are nested deeper than {MAX_DEPTH} levels"
    ))
}

/// Counts one more pair/value against `MAX_PAIRS`.
fn bump(count: &mut usize) -> Result<(), FormError> {
    if *count >= MAX_PAIRS {
        return Err(FormError::Malformed(format!(
            "more than {MAX_PAIRS} parameters"
        )));
    }
    *count += 1;
    Ok(())
}

/// Empty, `null` or `undefined`: what legacy clients send for "not used".
fn is_blank(text: &str) -> bool {
    text.is_empty() || text.eq_ignore_ascii_case("null") || text.eq_ignore_ascii_case("undefined")
}

/// A PHP integer array key (`0`, `12`), which orders list elements and drives `[]` appends.
fn index_key(key: &str) -> Option<u64> {
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse().ok()
}

/// Integer text: `12`, ` 12 `, `12.0`, `1e3`; anything with a fractional part or out of range is refused.
fn parse_int(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(n) = text.parse::<i64>() {
        return Some(n);
    }
    // `12.000` exactly, without going through f64 (which would round large values).
    if let Some((whole, frac)) = text.split_once('.') {
        if frac.bytes().all(|b| b == b'0') {
            if let Ok(n) = whole.parse::<i64>() {
                return Some(n);
            }
        }
    }
    // Exponent forms such as `1e3`, which JSON serialisers emit for whole floats.
    let f = parse_float(text)?;
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if f.fract() != 0.0 || !(-LIMIT..LIMIT).contains(&f) {
        return None;
    }
    Some(f as i64)
}

/// Finite float text; `1,5`, `NaN` and `inf` are refused.
fn parse_float(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Insertion-ordered string map: PHP arrays keep the order sent, and lookups must stay cheap with
/// thousands of keys.
#[derive(Debug, Clone)]
struct OrderedMap<V> {
    entries: Vec<(String, V)>,
    index: HashMap<String, usize>,
    /// Key of the next `[]` append, as in PHP: one past the largest integer key so far.
    next_index: u64,
}

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            index: HashMap::new(),
            next_index: 0,
        }
    }
}

impl<V> OrderedMap<V> {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn get(&self, key: &str) -> Option<&V> {
        let pos = *self.index.get(key)?;
        self.entries.get(pos).map(|(_, v)| v)
    }

    /// The value already under `key` (the first one wins), or `make()` inserted there.
    /// Always `Some`; an `Option` only so that no code path can panic.
    fn get_or_insert_with(&mut self, key: String, make: impl FnOnce() -> V) -> Option<&mut V> {
        let pos = match self.index.get(&key) {
            Some(&pos) => pos,
            None => {
                if let Some(n) = index_key(&key) {
                    self.next_index = self.next_index.max(n.saturating_add(1));
                }
                let pos = self.entries.len();
                self.index.insert(key.clone(), pos);
                self.entries.push((key, make()));
                pos
            }
        };
        self.entries.get_mut(pos).map(|(_, v)| v)
    }

    /// PHP `[]` append; `None` only when the integer keys are exhausted.
    fn push_next(&mut self, value: V) -> Option<&mut V> {
        let key = self.next_index.to_string();
        if self.index.contains_key(&key) {
            return None;
        }
        self.get_or_insert_with(key, || value)
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    fn from_list(items: Vec<V>) -> Self {
        let mut map = Self::default();
        for item in items {
            map.push_next(item);
        }
        map
    }
}

/// One decoded value, from a form pair or a JSON body.
#[derive(Debug, Clone)]
enum Node {
    /// A form value or JSON string.
    Text(String),
    /// A JSON number, bool or null: its text for the string accessors, the value itself for `value()`.
    Scalar(String, Value),
    /// `a[]=..` appends or a JSON array.
    List(Vec<Node>),
    /// `a[key]=..` or a JSON object.
    Map(OrderedMap<Node>),
}

/// One bracket segment of a form key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Append,
    Key(String),
}

impl Node {
    fn text(&self) -> Option<&str> {
        match self {
            Node::Text(s) | Node::Scalar(s, _) => Some(s),
            Node::List(_) | Node::Map(_) => None,
        }
    }

    fn is_leaf(&self) -> bool {
        self.text().is_some()
    }

    fn container_for(seg: &Seg) -> Node {
        match seg {
            Seg::Append => Node::List(Vec::new()),
            Seg::Key(_) => Node::Map(OrderedMap::default()),
        }
    }

    /// A list, or a map keyed only by integers (`a[0]=..&a[1]=..`, PHP's indexed array).
    fn is_list_like(&self) -> bool {
        match self {
            Node::List(_) => true,
            Node::Map(map) => map.keys().all(|k| index_key(k).is_some()),
            Node::Text(_) | Node::Scalar(..) => false,
        }
    }

    /// Elements in list order: by index when every key is an integer (`a[1]=..&a[0]=..`), else as sent.
    fn children(&self) -> Vec<&Node> {
        match self {
            Node::List(items) => items.iter().collect(),
            Node::Map(map) => {
                let mut indexed: Vec<(u64, &Node)> = map
                    .iter()
                    .filter_map(|(k, v)| index_key(k).map(|i| (i, v)))
                    .collect();
                if indexed.len() == map.len() {
                    indexed.sort_by_key(|(i, _)| *i);
                    indexed.into_iter().map(|(_, v)| v).collect()
                } else {
                    map.values().collect()
                }
            }
            leaf => vec![leaf],
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Node::Text(s) => Value::String(s.clone()),
            Node::Scalar(_, v) => v.clone(),
            Node::List(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Node::Map(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.to_owned(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Converts a JSON value found `depth` levels below a top-level name.
    fn from_json(value: Value, depth: usize, count: &mut usize) -> Result<Node, FormError> {
        Ok(match value {
            Value::String(s) => Node::Text(s),
            Value::Array(items) => {
                let mut list = Vec::new();
                for item in items {
                    list.push(Node::json_child(item, depth, count)?);
                }
                Node::List(list)
            }
            Value::Object(object) => {
                let mut map = OrderedMap::default();
                for (key, item) in object {
                    let child = Node::json_child(item, depth, count)?;
                    map.get_or_insert_with(key, || child);
                }
                Node::Map(map)
            }
            scalar => Node::Scalar(scalar.to_string(), scalar),
        })
    }

    fn json_child(value: Value, parent_depth: usize, count: &mut usize) -> Result<Node, FormError> {
        if parent_depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        bump(count)?;
        Node::from_json(value, parent_depth + 1, count)
    }

    /// Stores `leaf` at `path` below this container. The first value at a path wins, like for
    /// scalars, so a later `a[x][y]=..` cannot replace an earlier `a[x]=..` nor the reverse.
    fn insert(&mut self, path: &[Seg], leaf: String) {
        let Some((seg, rest)) = path.split_first() else {
            return;
        };
        let (fresh, leaf) = match rest.first() {
            None => (Node::Text(leaf), None),
            Some(next) => (Node::container_for(next), Some(leaf)),
        };
        // `a[]=1&a[k]=2` is legal PHP: the list becomes a map keyed 0, 1, ...
        if matches!(seg, Seg::Key(_)) {
            if let Node::List(items) = self {
                let map = OrderedMap::from_list(std::mem::take(items));
                *self = Node::Map(map);
            }
        }
        let child = match (self, seg) {
            (Node::List(items), Seg::Append) => {
                items.push(fresh);
                items.last_mut()
            }
            (Node::Map(map), Seg::Append) => map.push_next(fresh),
            (Node::Map(map), Seg::Key(key)) => map.get_or_insert_with(key.clone(), || fresh),
            // A leaf already sits here: the earlier value wins.
            _ => None,
        };
        if let (Some(child), Some(leaf)) = (child, leaf) {
            child.insert(rest, leaf);
        }
    }
}

/// How a form key is shaped.
enum KeyShape {
    Plain,
    Nested(String, Vec<Seg>),
    TooDeep,
}

/// `a[b][]` → `Nested("a", [Key(b), Append])`. Anything not exactly `name[..][..]` (such as `a[b`,
/// `a[b]c`, `[x]`) is a plain name, so odd keys are kept rather than refused.
fn split_key(key: &str) -> KeyShape {
    let Some((name, mut rest)) = key.split_once('[') else {
        return KeyShape::Plain;
    };
    if name.is_empty() {
        return KeyShape::Plain;
    }
    let mut path = Vec::new();
    loop {
        let Some((seg, after)) = rest.split_once(']') else {
            return KeyShape::Plain;
        };
        path.push(if seg.is_empty() {
            Seg::Append
        } else {
            Seg::Key(seg.to_owned())
        });
        if after.is_empty() {
            break;
        }
        let Some(next) = after.strip_prefix('[') else {
            return KeyShape::Plain;
        };
        rest = next;
    }
    if path.len() > MAX_DEPTH {
        KeyShape::TooDeep
    } else {
        KeyShape::Nested(name.to_owned(), path)
    }
}

/// Everything sent under one top-level name.
#[derive(Debug, Clone, Default)]
struct Entry {
    /// Plain `name=value` occurrences in arrival order (the first wins for scalars).
    plain: Vec<Node>,
    /// `name[..]=..` pairs, or a JSON array/object.
    tree: Option<Node>,
}

/// All parameters of one request, decoded leniently.
#[derive(Debug, Clone, Default)]
pub struct Params {
    entries: OrderedMap<Entry>,
    /// Pairs/values taken so far, bounded by `MAX_PAIRS`.
    count: usize,
}

impl Params {
    /// Decode a body whatever the declared content type: form-urlencoded (the usual case, also when the
    /// content type is missing, `text/plain` or wrong), or a JSON object when the content type says json
    /// OR the trimmed body starts with '{' (values: strings kept, numbers/bools turned into their text,
    /// arrays/objects kept as structured values). Invalid UTF-8 or invalid JSON-with-json-content-type → Malformed.
    ///
    /// A `{` body that is not valid JSON under a non-JSON type falls back to form decoding; an empty
    /// body is no parameters even when declared JSON. Percent-escapes that decode to invalid UTF-8 are
    /// replaced by U+FFFD rather than refused (old clients escape Latin-1).
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Params, FormError> {
        let text = std::str::from_utf8(body)
            .map_err(|e| FormError::Malformed(format!("body is not valid UTF-8 ({e})")))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text).trim();
        let declared_json = content_type.is_some_and(declares_json);
        let mut params = Params::default();
        if text.is_empty() {
            return Ok(params);
        }
        if declared_json || text.starts_with('{') {
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(object)) => {
                    params.add_json_object(object)?;
                    return Ok(params);
                }
                Ok(_) if declared_json => {
                    return Err(FormError::Malformed(
                        "JSON body must be an object".to_owned(),
                    ))
                }
                Err(e) if declared_json => {
                    return Err(FormError::Malformed(format!("invalid JSON ({e})")))
                }
                _ => {}
            }
        }
        for (key, value) in url::form_urlencoded::parse(text.as_bytes()) {
            bump(&mut params.count)?;
            params.insert_pair(key.into_owned(), value.into_owned())?;
        }
        Ok(params)
    }

    /// Add pairs from elsewhere (e.g. the query string or multipart text fields). They are appended
    /// after the body's, so for scalars the body's (first) occurrence wins; lists collect both.
    ///
    /// This cannot fail, so pairs beyond `MAX_PAIRS` or nested deeper than `MAX_DEPTH` are dropped.
    pub fn extend_pairs(&mut self, pairs: impl IntoIterator<Item = (String, String)>) {
        for (key, value) in pairs {
            if bump(&mut self.count).is_err() {
                break;
            }
            // Only a too-deep key fails, and dropping it is all that can be done here.
            let _ = self.insert_pair(key, value);
        }
    }

    /// The first parameter with a NUL character anywhere in its name or values. Postgres text
    /// cannot hold NUL, so such input is refused up front on every backend alike.
    pub fn with_nul(&self) -> Option<&str> {
        fn has_nul(node: &Node) -> bool {
            match node {
                Node::Text(t) | Node::Scalar(t, _) => t.contains('\0'),
                Node::List(items) => items.iter().any(has_nul),
                Node::Map(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            }
        }
        self.entries
            .iter()
            .find(|(name, e)| {
                name.contains('\0')
                    || e.plain.iter().any(has_nul)
                    || e.tree.as_ref().is_some_and(has_nul)
            })
            .map(|(name, _)| name)
    }

    /// Raw scalar text, or None when absent. Empty string counts as present here.
    ///
    /// A name sent only as a flat list (`name[]=1`, `name[0]=1`, JSON `[1]`) yields its first element.
    pub fn raw(&self, name: &str) -> Option<&str> {
        let entry = self.entries.get(name)?;
        if let Some(first) = entry.plain.first() {
            return first.text();
        }
        let tree = entry.tree.as_ref()?;
        if !tree.is_list_like() {
            return None;
        }
        let items = tree.children();
        if items.iter().all(|n| n.is_leaf()) {
            items.first().and_then(|n| n.text())
        } else {
            None
        }
    }

    /// Trimmed text; None when absent, empty, or the literal "null"/"undefined" (legacy clients send these for "not used").
    pub fn str(&self, name: &str) -> Option<&str> {
        self.raw(name).map(|s| s.trim()).filter(|s| !is_blank(s))
    }

    pub fn required_str(&self, name: &str) -> Result<&str, FormError> {
        self.str(name)
            .ok_or_else(|| FormError::Missing(name.to_owned()))
    }

    /// Integers given as numbers or strings ("12", " 12 ", "12.0" accepted; "12.5", "abc" → Invalid expected "an integer").
    pub fn i64(&self, name: &str) -> Result<Option<i64>, FormError> {
        match self.str(name) {
            None => Ok(None),
            Some(text) => parse_int(text)
                .map(Some)
                .ok_or_else(|| invalid(name, EXPECTED_INTEGER)),
        }
    }

    pub fn required_i64(&self, name: &str) -> Result<i64, FormError> {
        self.i64(name)?
            .ok_or_else(|| FormError::Missing(name.to_owned()))
    }

    /// Floats, "1.5", "1,5" is NOT accepted (Invalid expected "a number"); NaN/inf refused.
    pub fn f64(&self, name: &str) -> Result<Option<f64>, FormError> {
        match self.str(name) {
            None => Ok(None),
            Some(text) => parse_float(text)
                .map(Some)
                .ok_or_else(|| invalid(name, EXPECTED_NUMBER)),
        }
    }

    /// Booleans: 1/0, true/false, on/off, yes/no, t/f (case-insensitive); else Invalid expected "a boolean (1/0, true/false, on/off)".
    pub fn bool(&self, name: &str) -> Result<Option<bool>, FormError> {
        let Some(text) = self.str(name) else {
            return Ok(None);
        };
        match text.to_ascii_lowercase().as_str() {
            "1" | "true" | "on" | "yes" | "t" => Ok(Some(true)),
            "0" | "false" | "off" | "no" | "f" => Ok(Some(false)),
            _ => Err(invalid(name, EXPECTED_BOOLEAN)),
        }
    }

    /// A list of integers from any of: `name[]=1&name[]=2`, `name=1&name=2` (repeated), `name[0]=1&name[1]=2`,
    /// `name=[1,2]` (JSON array string, numbers or numeric strings), `name=1,2` (comma list), `name=7` (single).
    /// Absent → empty Vec. Any non-integer element → Invalid expected "an integer or a list of integers".
    ///
    /// Blank elements (trailing commas, `null`, `ids[]=`) are skipped, as blank scalars are "not given".
    /// Indexed keys are ordered by index; plain occurrences come before bracketed ones.
    pub fn i64_list(&self, name: &str) -> Result<Vec<i64>, FormError> {
        let mut out = Vec::new();
        let Some(entry) = self.entries.get(name) else {
            return Ok(out);
        };
        let nested = entry.tree.iter().flat_map(Node::children);
        for node in entry.plain.iter().chain(nested) {
            push_ints(node, &mut out).ok_or_else(|| invalid(name, EXPECTED_INTEGER_LIST))?;
        }
        Ok(out)
    }

    /// A structured value: PHP-style nested keys `name[12][ptype]=5&name[12][zip]=true` become
    /// `{"12": {"ptype": "5", "zip": "true"}}` (leaves are JSON strings; `name[a][]=x` appends to an array),
    /// or a JSON string `name={"12":{"ptype":5}}` is parsed (any JSON value). If both forms are absent → Ok(None).
    /// A plain non-JSON scalar → Ok(Some(Value::String(..))). Invalid JSON text that starts with '{' or '[' → Invalid expected "valid JSON".
    ///
    /// Blank text (empty, `null`, `undefined`) is "not given" → Ok(None), as for [`Params::str`].
    /// When both forms are present the bracketed one wins.
    pub fn value(&self, name: &str) -> Result<Option<Value>, FormError> {
        let Some(entry) = self.entries.get(name) else {
            return Ok(None);
        };
        if let Some(tree) = &entry.tree {
            return Ok(Some(tree.to_json()));
        }
        let Some(first) = entry.plain.first() else {
            return Ok(None);
        };
        let text = first.text().unwrap_or_default();
        let trimmed = text.trim();
        if is_blank(trimmed) {
            return Ok(None);
        }
        if let Node::Scalar(_, value) = first {
            return Ok(Some(value.clone()));
        }
        match serde_json::from_str::<Value>(trimmed) {
            Ok(value) => Ok(Some(value)),
            Err(_) if trimmed.starts_with('{') || trimmed.starts_with('[') => {
                Err(invalid(name, EXPECTED_JSON))
            }
            Err(_) => Ok(Some(Value::String(text.to_owned()))),
        }
    }

    /// Whether `name` was given: non-blank text, or a list or map.
    pub fn given(&self, name: &str) -> bool {
        self.str(name).is_some() || self.entries.get(name).is_some_and(|e| e.tree.is_some())
    }

    /// Every top-level parameter name present (for diagnostics and tests).
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().map(str::to_owned).collect()
    }

    fn add_json_object(&mut self, object: serde_json::Map<String, Value>) -> Result<(), FormError> {
        for (name, value) in object {
            bump(&mut self.count)?;
            if name.is_empty() {
                continue;
            }
            let node = Node::from_json(value, 0, &mut self.count)?;
            let Some(entry) = self.entries.get_or_insert_with(name, Entry::default) else {
                continue;
            };
            if node.is_leaf() {
                entry.plain.push(node);
            } else if entry.tree.is_none() {
                entry.tree = Some(node);
            }
        }
        Ok(())
    }

    /// Files one decoded pair under its top-level name; only a too-deep key is an error.
    fn insert_pair(&mut self, key: String, value: String) -> Result<(), FormError> {
        if key.is_empty() {
            return Ok(());
        }
        match split_key(&key) {
            KeyShape::TooDeep => return Err(too_deep()),
            KeyShape::Plain => {
                if let Some(entry) = self.entries.get_or_insert_with(key, Entry::default) {
                    entry.plain.push(Node::Text(value));
                }
            }
            KeyShape::Nested(name, path) => {
                let Some(first) = path.first() else {
                    return Ok(());
                };
                let fresh = Node::container_for(first);
                if let Some(entry) = self.entries.get_or_insert_with(name, Entry::default) {
                    entry.tree.get_or_insert(fresh).insert(&path, value);
                }
            }
        }
        Ok(())
    }
}

/// `application/json`, `text/json`, `application/vnd.api+json; charset=utf-8`, ...
fn declares_json(content_type: &str) -> bool {
    let essence = content_type
        .split_once(';')
        .map_or(content_type, |(essence, _)| essence);
    essence.to_ascii_lowercase().contains("json")
}

/// Appends the integers one list element holds (a number, `7`, `1,2`, `[1,"2"]`); `None` when it
/// holds anything else, including a nested map or list.
fn push_ints(node: &Node, out: &mut Vec<i64>) -> Option<()> {
    let text = node.text()?.trim();
    if is_blank(text) {
        return Some(());
    }
    if let Node::Scalar(..) = node {
        out.push(parse_int(text)?);
        return Some(());
    }
    let mut list = text;
    if text.starts_with('[') {
        if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text) {
            for item in items {
                match item {
                    Value::Number(n) => out.push(parse_int(&n.to_string())?),
                    Value::String(s) if is_blank(s.trim()) => {}
                    Value::String(s) => out.push(parse_int(&s)?),
                    Value::Null => {}
                    Value::Bool(_) | Value::Array(_) | Value::Object(_) => return None,
                }
            }
            return Some(());
        }
        // Sloppy `[1,2,]` or `['1','2']`: drop the brackets and read it as a comma list.
        list = text.strip_prefix('[')?.strip_suffix(']')?;
    }
    for part in list.split(',') {
        let part = part.trim().trim_matches(|c| c == '"' || c == '\'').trim();
        if !is_blank(part) {
            out.push(parse_int(part)?);
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form(body: &str) -> Params {
        match Params::parse(None, body.as_bytes()) {
            Ok(params) => params,
            Err(e) => panic!("{body:?} did not parse: {e}"),
        }
    }

    fn bad(name: &str, expected: &'static str) -> FormError {
        invalid(name, expected)
    }

    fn malformed(result: Result<Params, FormError>) -> bool {
        matches!(result, Err(FormError::Malformed(_)))
    }

    #[test]
    fn decodes_plus_percent_and_bare_keys() {
        let p = form("a=hello+world&b=%41%2B%26%3D&c&d=");
        assert_eq!(p.raw("a"), Some("hello world"));
        assert_eq!(p.raw("b"), Some("A+&="));
        assert_eq!(p.raw("c"), Some(""));
        assert_eq!(p.str("c"), None);
        assert_eq!(p.raw("d"), Some(""));
        assert_eq!(p.raw("missing"), None);
    }

    #[test]
    fn skips_empty_segments_and_empty_names() {
        let p = form("&a=1&&b=2&=3&");
        assert_eq!(p.names(), vec!["a", "b"]);
    }

    #[test]
    fn names_keep_arrival_order() {
        let p = form("z=1&a[x]=2&m=3&z=4");
        assert_eq!(p.names(), vec!["z", "a", "m"]);
    }

    #[test]
    fn first_scalar_wins_and_extend_appends() {
        let mut p = form("a=1&a=2");
        p.extend_pairs(vec![
            ("a".to_owned(), "3".to_owned()),
            ("q".to_owned(), "x".to_owned()),
            ("ids[]".to_owned(), "9".to_owned()),
        ]);
        assert_eq!(p.raw("a"), Some("1"));
        assert_eq!(p.i64_list("a"), Ok(vec![1, 2, 3]));
        assert_eq!(p.raw("q"), Some("x"));
        assert_eq!(p.i64_list("ids"), Ok(vec![9]));
    }

    #[test]
    fn form_whatever_the_content_type() {
        for ct in [
            None,
            Some("application/x-www-form-urlencoded"),
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
            Some("text/plain"),
            Some("application/octet-stream"),
            Some(""),
        ] {
            let p = Params::parse(ct, b"session=abc&printer_id=5\r\n");
            let p = p.unwrap_or_else(|e| panic!("{ct:?}: {e}"));
            assert_eq!(p.raw("session"), Some("abc"), "{ct:?}");
            assert_eq!(p.raw("printer_id"), Some("5"), "{ct:?}");
        }
    }

    #[test]
    fn json_detected_by_type_or_leading_brace() {
        for ct in [
            Some("application/json"),
            Some("Application/JSON; charset=utf-8"),
            Some("text/json"),
            Some("application/vnd.api+json"),
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            None,
        ] {
            let p = Params::parse(ct, b"  {\"session\":\"abc\",\"n\":5}  ");
            let p = p.unwrap_or_else(|e| panic!("{ct:?}: {e}"));
            assert_eq!(p.raw("session"), Some("abc"), "{ct:?}");
            assert_eq!(p.i64("n"), Ok(Some(5)), "{ct:?}");
        }
    }

    #[test]
    fn json_content_type_requires_a_json_object() {
        let json = Some("application/json");
        assert!(malformed(Params::parse(json, b"{\"a\":")));
        assert!(malformed(Params::parse(json, b"a=1&b=2")));
        assert!(malformed(Params::parse(json, b"[1,2]")));
        assert!(malformed(Params::parse(json, b"\"text\"")));
        // Nothing sent is no parameters, not an error.
        let empty = Params::parse(json, b"  \n");
        assert!(empty.is_ok_and(|p| p.names().is_empty()));
    }

    #[test]
    fn brace_body_that_is_not_json_falls_back_to_form() {
        let p = form("{weird=1&b=2");
        assert_eq!(p.raw("{weird"), Some("1"));
        assert_eq!(p.raw("b"), Some("2"));
    }

    #[test]
    fn invalid_utf8_is_malformed_but_bad_escapes_are_replaced() {
        assert!(malformed(Params::parse(None, b"a=\xff\xfe")));
        assert!(malformed(Params::parse(
            Some("application/json"),
            b"{\"a\":\"\xc3\"}"
        )));
        let p = form("name=caf%E9");
        assert_eq!(p.raw("name"), Some("caf\u{fffd}"));
        let p = form("name=caf%C3%A9");
        assert_eq!(p.raw("name"), Some("café"));
    }

    #[test]
    fn leading_bom_is_ignored() {
        let p = Params::parse(None, "\u{feff}a=1".as_bytes());
        assert!(p.is_ok_and(|p| p.raw("a") == Some("1")));
        let p = Params::parse(Some("application/json"), "\u{feff}{\"a\":1}".as_bytes());
        assert!(p.is_ok_and(|p| p.raw("a") == Some("1")));
    }

    #[test]
    fn str_trims_and_treats_null_undefined_as_absent() {
        let p = form("a=+abc+&b=null&c=undefined&d=NULL&e=+++&f=nullish");
        assert_eq!(p.str("a"), Some("abc"));
        assert_eq!(p.raw("a"), Some(" abc "));
        for name in ["b", "c", "d", "e", "missing"] {
            assert_eq!(p.str(name), None, "{name}");
            assert_eq!(
                p.required_str(name),
                Err(FormError::Missing(name.to_owned()))
            );
        }
        assert_eq!(p.str("f"), Some("nullish"));
        assert_eq!(p.required_str("a"), Ok("abc"));
    }

    #[test]
    fn integers() {
        let p = form(
            "a=12&b=+12+&c=12.0&d=-3&e=%2B4&f=12.5&g=abc&h=&i=1e3&j=1%2C5&k=99999999999999999999&l=-0.000&m=null",
        );
        assert_eq!(p.i64("a"), Ok(Some(12)));
        assert_eq!(p.i64("b"), Ok(Some(12)));
        assert_eq!(p.i64("c"), Ok(Some(12)));
        assert_eq!(p.i64("d"), Ok(Some(-3)));
        assert_eq!(p.i64("e"), Ok(Some(4)));
        assert_eq!(p.i64("i"), Ok(Some(1000)));
        assert_eq!(p.i64("l"), Ok(Some(0)));
        for name in ["f", "g", "j", "k"] {
            assert_eq!(p.i64(name), Err(bad(name, "an integer")), "{name}");
        }
        assert_eq!(p.i64("h"), Ok(None));
        assert_eq!(p.i64("m"), Ok(None));
        assert_eq!(p.i64("missing"), Ok(None));
        assert_eq!(p.required_i64("a"), Ok(12));
        assert_eq!(p.required_i64("h"), Err(FormError::Missing("h".to_owned())));
        assert_eq!(p.required_i64("g"), Err(bad("g", "an integer")));
        assert_eq!(p.i64("i64max"), Ok(None), "absent names are not errors");
        let p = form("max=9223372036854775807&min=-9223372036854775808&over=9223372036854775808");
        assert_eq!(p.i64("max"), Ok(Some(i64::MAX)));
        assert_eq!(p.i64("min"), Ok(Some(i64::MIN)));
        assert_eq!(p.i64("over"), Err(bad("over", "an integer")));
    }

    #[test]
    fn floats() {
        let p = form("a=1.5&b=+2+&c=1%2C5&d=NaN&e=inf&f=1e400&g=-0.25&h=&i=x");
        assert_eq!(p.f64("a"), Ok(Some(1.5)));
        assert_eq!(p.f64("b"), Ok(Some(2.0)));
        assert_eq!(p.f64("g"), Ok(Some(-0.25)));
        for name in ["c", "d", "e", "f", "i"] {
            assert_eq!(p.f64(name), Err(bad(name, "a number")), "{name}");
        }
        assert_eq!(p.f64("h"), Ok(None));
        assert_eq!(p.f64("missing"), Ok(None));
    }

    #[test]
    fn booleans() {
        let truthy = [
            "1", "true", "TRUE", "on", "On", "yes", "YES", "t", "T", "+true+",
        ];
        let falsy = ["0", "false", "False", "off", "OFF", "no", "No", "f", "F"];
        for (text, expected) in truthy
            .iter()
            .map(|t| (t, true))
            .chain(falsy.iter().map(|t| (t, false)))
        {
            let p = form(&format!("b={text}"));
            assert_eq!(p.bool("b"), Ok(Some(expected)), "{text}");
        }
        for text in ["2", "maybe", "y%20es", "-1"] {
            let p = form(&format!("b={text}"));
            assert_eq!(
                p.bool("b"),
                Err(bad("b", "a boolean (1/0, true/false, on/off)")),
                "{text}"
            );
        }
        assert_eq!(form("b=").bool("b"), Ok(None));
        assert_eq!(form("").bool("b"), Ok(None));
    }

    #[test]
    fn integer_lists_in_every_shape() {
        let cases = [
            ("ids[]=1&ids[]=2", vec![1, 2]),
            ("ids=1&ids=2", vec![1, 2]),
            ("ids[0]=1&ids[1]=2", vec![1, 2]),
            ("ids[1]=2&ids[0]=1", vec![1, 2]),
            ("ids=%5B1%2C2%5D", vec![1, 2]),
            ("ids=[1,\"2\",+3+]", vec![1, 2, 3]),
            ("ids=1,2", vec![1, 2]),
            ("ids=+1+,+2+,", vec![1, 2]),
            ("ids=7", vec![7]),
            ("ids=7.0", vec![7]),
            ("ids=[1,2,]", vec![1, 2]),
            ("ids=['1','2']", vec![1, 2]),
            ("ids=[]", vec![]),
            ("ids=", vec![]),
            ("ids=null", vec![]),
            ("ids[]=", vec![]),
            ("ids=[1,null]", vec![1]),
            ("ids=1&ids[]=2", vec![1, 2]),
            ("other=1", vec![]),
        ];
        for (body, expected) in cases {
            assert_eq!(form(body).i64_list("ids"), Ok(expected), "{body}");
        }
        let wrong = bad("ids", "an integer or a list of integers");
        for body in [
            "ids=1,a",
            "ids=1.5",
            "ids[]=1&ids[]=x",
            "ids=[1,[2]]",
            "ids=[true]",
            "ids=[1,2",
            "ids[0][x]=1",
            "ids=1%3B2",
        ] {
            assert_eq!(form(body).i64_list("ids"), Err(wrong.clone()), "{body}");
        }
    }

    #[test]
    fn bracket_keys() {
        let p = form("a[b][c]=1&a[b][d]=2");
        assert_eq!(p.names(), vec!["a"]);
        assert_eq!(p.value("a"), Ok(Some(json!({"b": {"c": "1", "d": "2"}}))));
        assert_eq!(p.raw("a"), None);
        assert_eq!(p.raw("a[b][c]"), None);

        // Malformed brackets are plain names, never an error.
        let p = form("a[b=1&c]d=2&[x]=3&e[f]g=4&h[i][=5&j[k[l]]=6");
        assert_eq!(
            p.names(),
            vec!["a[b", "c]d", "[x]", "e[f]g", "h[i][", "j[k[l]]"]
        );
        assert_eq!(p.raw("a[b"), Some("1"));
        assert_eq!(p.raw("a"), None);
        assert_eq!(p.raw("j[k[l]]"), Some("6"));
    }

    #[test]
    fn raw_on_nested_only_names() {
        let p = form("ids[]=4&ids[]=5&m[x]=1&k[1]=b&k[0]=a&deep[][x]=1&empty=&z[0][]=1");
        assert_eq!(p.raw("ids"), Some("4"));
        assert_eq!(p.i64("ids"), Ok(Some(4)));
        assert_eq!(p.raw("m"), None);
        assert_eq!(p.raw("k"), Some("a"));
        assert_eq!(p.raw("deep"), None);
        assert_eq!(p.raw("z"), None);
        assert_eq!(p.i64("m"), Ok(None));
    }

    #[test]
    fn nested_values_first_wins_and_php_appends() {
        let p = form(
            "a[x]=1&a[x]=2&b[x]=1&b[x][y]=2&c[x][y]=1&c[x]=2&d[]=1&d[k]=2&d[]=3&e[5]=a&e[]=b&f[a][]=x&f[a][]=y",
        );
        assert_eq!(p.value("a"), Ok(Some(json!({"x": "1"}))));
        assert_eq!(p.value("b"), Ok(Some(json!({"x": "1"}))));
        assert_eq!(p.value("c"), Ok(Some(json!({"x": {"y": "1"}}))));
        assert_eq!(
            p.value("d"),
            Ok(Some(json!({"0": "1", "k": "2", "1": "3"})))
        );
        assert_eq!(p.value("e"), Ok(Some(json!({"5": "a", "6": "b"}))));
        assert_eq!(p.value("f"), Ok(Some(json!({"a": ["x", "y"]}))));
    }

    #[test]
    fn structured_values() {
        let p = form(
            "updates[12][ptype]=5&updates[12][zip]=true&j=%7B%2212%22%3A%7B%22ptype%22%3A5%7D%7D&s=hello&n=5&arr=[1,2]&bad={oops&bad2=[1,&blank=&nul=null",
        );
        assert_eq!(
            p.value("updates"),
            Ok(Some(json!({"12": {"ptype": "5", "zip": "true"}})))
        );
        assert_eq!(p.value("j"), Ok(Some(json!({"12": {"ptype": 5}}))));
        assert_eq!(p.value("s"), Ok(Some(json!("hello"))));
        assert_eq!(p.value("n"), Ok(Some(json!(5))));
        assert_eq!(p.value("arr"), Ok(Some(json!([1, 2]))));
        assert_eq!(p.value("bad"), Err(bad("bad", "valid JSON")));
        assert_eq!(p.value("bad2"), Err(bad("bad2", "valid JSON")));
        assert_eq!(p.value("blank"), Ok(None));
        assert_eq!(p.value("nul"), Ok(None));
        assert_eq!(p.value("missing"), Ok(None));
    }

    #[test]
    fn json_body_works_with_every_accessor() {
        let body = br#"{"session":"abc","printer_id":5,"ids":[1,2],"updates":{"3":{"ptype":1}},
            "ratio":0.5,"on":true,"off":false,"none":null,"str_ids":"[3,4]","big":1e3,"idx":{"1":"b","0":"a"}}"#;
        for ct in [Some("application/json"), None] {
            let p = Params::parse(ct, body).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.required_str("session"), Ok("abc"));
            assert_eq!(p.i64("printer_id"), Ok(Some(5)));
            assert_eq!(p.raw("printer_id"), Some("5"));
            assert_eq!(p.i64_list("ids"), Ok(vec![1, 2]));
            assert_eq!(p.raw("ids"), Some("1"));
            assert_eq!(p.value("ids"), Ok(Some(json!([1, 2]))));
            assert_eq!(p.value("updates"), Ok(Some(json!({"3": {"ptype": 1}}))));
            assert_eq!(p.raw("updates"), None);
            assert_eq!(p.f64("ratio"), Ok(Some(0.5)));
            assert_eq!(p.bool("on"), Ok(Some(true)));
            assert_eq!(p.bool("off"), Ok(Some(false)));
            assert_eq!(p.str("on"), Some("true"));
            assert_eq!(p.str("none"), None);
            assert_eq!(p.value("none"), Ok(None));
            assert_eq!(p.i64("none"), Ok(None));
            assert_eq!(p.i64_list("str_ids"), Ok(vec![3, 4]));
            assert_eq!(p.i64("big"), Ok(Some(1000)));
            assert_eq!(
                p.i64_list("idx"),
                Err(bad("idx", "an integer or a list of integers"))
            );
            assert_eq!(p.raw("idx"), Some("a"));
            assert_eq!(p.value("printer_id"), Ok(Some(json!(5))));
            assert_eq!(p.value("session"), Ok(Some(json!("abc"))));
            assert_eq!(p.i64("session"), Err(bad("session", "an integer")));
            assert_eq!(p.names().len(), 11);
        }
    }

    #[test]
    fn json_body_then_query_pairs() {
        let mut p = Params::parse(Some("application/json"), br#"{"a":"body","ids":[1]}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        p.extend_pairs(vec![
            ("a".to_owned(), "query".to_owned()),
            ("ids[]".to_owned(), "2".to_owned()),
            ("ids[k]".to_owned(), "3".to_owned()),
        ]);
        assert_eq!(p.raw("a"), Some("body"));
        assert_eq!(p.i64_list("ids"), Ok(vec![1, 2, 3]));
    }

    #[test]
    fn nesting_depth_is_limited() {
        let ok = format!("a{}=1", "[x]".repeat(MAX_DEPTH));
        assert!(form(&ok).value("a").is_ok_and(|v| v.is_some()));
        let too_deep = format!("a{}=1", "[x]".repeat(MAX_DEPTH + 1));
        assert!(malformed(Params::parse(None, too_deep.as_bytes())));
        let appends = format!("a{}=1", "[]".repeat(MAX_DEPTH + 1));
        assert!(malformed(Params::parse(None, appends.as_bytes())));

        let json_ok = format!(
            "{{\"a\":{}1{}}}",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert!(Params::parse(None, json_ok.as_bytes()).is_ok());
        let json_deep = format!(
            "{{\"a\":{}1{}}}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        assert!(malformed(Params::parse(None, json_deep.as_bytes())));

        // Far beyond serde_json's own recursion limit: refused, no stack overflow.
        let hostile = format!("{{\"a\":{}", "[".repeat(100_000));
        assert!(malformed(Params::parse(
            Some("application/json"),
            hostile.as_bytes()
        )));

        // extend_pairs cannot fail: the too-deep pair is dropped, the rest kept.
        let mut p = Params::default();
        p.extend_pairs(vec![
            (too_deep.replace("=1", ""), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ]);
        assert_eq!(p.names(), vec!["b"]);
    }

    #[test]
    fn pair_count_is_limited() {
        let body = |n: usize| vec!["ids[]=1"; n].join("&");
        let p = form(&body(MAX_PAIRS));
        assert_eq!(p.i64_list("ids").map(|v| v.len()), Ok(MAX_PAIRS));
        assert!(malformed(Params::parse(
            None,
            body(MAX_PAIRS + 1).as_bytes()
        )));

        let distinct: Vec<String> = (0..MAX_PAIRS + 1).map(|i| format!("k{i}=1")).collect();
        assert!(malformed(Params::parse(
            None,
            distinct.join("&").as_bytes()
        )));

        let json_list = format!("{{\"a\":[{}]}}", vec!["1"; MAX_PAIRS].join(","));
        assert!(malformed(Params::parse(None, json_list.as_bytes())));
        let json_list = format!("{{\"a\":[{}]}}", vec!["1"; MAX_PAIRS - 1].join(","));
        assert!(Params::parse(None, json_list.as_bytes()).is_ok());

        let mut p = form(&body(MAX_PAIRS - 1));
        p.extend_pairs((0..5).map(|i| (format!("q{i}"), "1".to_owned())));
        assert_eq!(p.names(), vec!["ids", "q0"]);
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            FormError::Missing("session".to_owned()).to_string(),
            "missing required parameter 'session'"
        );
        assert_eq!(
            bad("printer_id", "an integer").to_string(),
            "parameter 'printer_id' must be an integer"
        );
        let e = Params::parse(None, &[0xff]).err().map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.starts_with("malformed request body: ")));
    }

    /// Calls every accessor; the point is only that none of them panics.
    fn exercise(p: &Params, extra: &[&str]) {
        let mut names = p.names();
        names.extend(extra.iter().map(|s| (*s).to_owned()));
        for name in &names {
            let _ = p.raw(name);
            let _ = p.str(name);
            let _ = p.required_str(name);
            let _ = p.i64(name);
            let _ = p.required_i64(name);
            let _ = p.f64(name);
            let _ = p.bool(name);
            let _ = p.i64_list(name);
            let _ = p.value(name);
        }
    }

    /// Minimal LCG so the "fuzz" test is deterministic and needs no extra crate.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as usize
        }

        fn pick<T: Copy>(&mut self, items: &[T], fallback: T) -> T {
            let i = self.next() % items.len().max(1);
            items.get(i).copied().unwrap_or(fallback)
        }
    }

    const FUZZ_NAMES: &[&str] = &["a", "ids", "updates", "a[b", "0", ""];

    /// A random valid JSON value, so JSON bodies get exercised and not only rejected.
    fn random_json(rng: &mut Lcg, depth: usize) -> Value {
        match rng.next() % if depth > 10 { 5 } else { 7 } {
            0 => Value::Null,
            1 => json!(rng.next().is_multiple_of(2)),
            2 => json!(rng.next() as i64 - 1_000),
            3 => json!((rng.next() % 1000) as f64 / 7.0),
            4 => json!(rng.pick(
                &["", "1,2", "[1,2]", "null", "x", " 7 ", "{\"a\":1}", "["],
                ""
            )),
            5 => Value::Array(
                (0..rng.next() % 4)
                    .map(|_| random_json(rng, depth + 1))
                    .collect(),
            ),
            _ => Value::Object(
                (0..rng.next() % 4)
                    .map(|_| {
                        (
                            rng.pick(FUZZ_NAMES, "a").to_owned(),
                            random_json(rng, depth + 1),
                        )
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn random_input_never_panics() {
        const ALPHABET: &[u8] = b"ab[]{}=&%+,.-\"':0123456789 nulltrue\x00\n";
        // Fragments that make bracket keys, lists and escapes likely rather than rare.
        const TOKENS: &[&str] = &[
            "ids", "a", "updates", "[", "]", "[]", "[0]", "[12]", "=", "&", "{", "}", "\"", ":",
            ",", "1", "-2", "1.5", "1e3", "%5B", "%5D", "%7B", "%22", "%", "%e9", "+", "null",
            "true", " ", "[1,2]", "\"ids\":", "\"a\":", "[\"1\"]",
        ];
        let mut rng = Lcg(0x2545_f491_4f6c_dd1d);
        let content_types = [None, Some("application/json"), Some("text/plain")];
        let mut parsed = 0;
        for round in 0..600 {
            let len = rng.next() % 48;
            let mut body: Vec<u8> = Vec::new();
            match round % 4 {
                0 | 1 => {
                    for _ in 0..len {
                        // Every fourth body may hold arbitrary bytes, mostly not UTF-8.
                        if round % 4 == 0 && rng.next().is_multiple_of(8) {
                            body.push((rng.next() % 256) as u8);
                        } else {
                            body.push(rng.pick(ALPHABET, b'a'));
                        }
                    }
                }
                2 => {
                    for _ in 0..len {
                        body.extend_from_slice(rng.pick(TOKENS, "a").as_bytes());
                    }
                }
                _ => {
                    let fields = (0..len % 6).map(|_| {
                        (
                            rng.pick(FUZZ_NAMES, "a").to_owned(),
                            random_json(&mut rng, 0),
                        )
                    });
                    body = Value::Object(fields.collect()).to_string().into_bytes();
                }
            }
            if round % 3 == 0 && round % 4 != 3 {
                body.insert(0, b'{');
            }
            for ct in content_types {
                if let Ok(mut p) = Params::parse(ct, &body) {
                    parsed += 1;
                    exercise(&p, FUZZ_NAMES);
                    let text = String::from_utf8_lossy(&body).into_owned();
                    let (k, v) = text.split_once('=').unwrap_or((&text, ""));
                    p.extend_pairs(vec![
                        (k.to_owned(), v.to_owned()),
                        (v.to_owned(), k.to_owned()),
                    ]);
                    exercise(&p, &[]);
                }
            }
        }
        assert!(parsed > 900, "too few parseable bodies: {parsed}");
    }
}
