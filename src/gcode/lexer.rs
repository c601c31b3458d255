//! Byte-level G-code line lexer: comments, line numbers, checksums, words.
//!
//! Works on raw bytes (G-code is ASCII; comments may hold anything), never allocates and never
//! panics. Letters are case-insensitive; spaces between words are optional (`G1X10Y5`).

/// Numbers whose magnitude exceeds this are treated as garbage (ignored).
const MAX_MAGNITUDE: f64 = 1e9;

/// Splits a line into the code part and the `;` comment (without the `;`).
pub(crate) fn split_comment(line: &[u8]) -> (&[u8], Option<&[u8]>) {
    match line.iter().position(|&b| b == b';') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    }
}

/// The command word of a line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Command<'a> {
    /// No command (blank, comment only, bare parameters).
    None,
    /// `G<code>[.<sub>]`
    G(u32, u32),
    /// `M<code>`
    M(u32),
    /// `T<n>` tool change.
    T(u32),
    /// A non-numeric tool change such as Prusa MMU `Tx` / `Tc` / `T?`.
    TOther,
    /// An extended (Klipper / RepRapFirmware macro) command word such as `SET_VELOCITY_LIMIT`;
    /// holds the rest of the line starting at the command word.
    Extended(&'a [u8]),
    /// Anything else (garbage).
    Unknown,
}

/// The parameter words of a line (`X10 Y-2.5 E.8 F1200`), indexed by letter.
#[derive(Debug, Clone)]
pub(crate) struct Words {
    /// Bit per letter: the letter appeared (with or without a number).
    present: u32,
    /// Bit per letter: the letter appeared with a valid number.
    valued: u32,
    values: [f64; 26],
}

impl Default for Words {
    fn default() -> Self {
        Words {
            present: 0,
            valued: 0,
            values: [0.0; 26],
        }
    }
}

impl Words {
    #[inline]
    fn bit(letter: u8) -> u32 {
        1u32 << (letter.to_ascii_uppercase().wrapping_sub(b'A') as u32 % 26)
    }

    /// The value of a letter (`b'X'`), if it appeared with a valid number.
    #[inline]
    pub fn get(&self, letter: u8) -> Option<f64> {
        if self.valued & Self::bit(letter) != 0 {
            Some(self.values[(letter.to_ascii_uppercase().wrapping_sub(b'A') % 26) as usize])
        } else {
            None
        }
    }

    /// The letter appeared, with or without a number (`G28 X`).
    #[inline]
    pub fn has(&self, letter: u8) -> bool {
        self.present & Self::bit(letter) != 0
    }

    /// True if any of the letters appeared.
    #[inline]
    pub fn any(&self, letters: &[u8]) -> bool {
        letters.iter().any(|&l| self.has(l))
    }
}

#[inline]
fn skip_blank(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t' || b[i] == b'\r') {
        i += 1;
    }
    i
}

/// Skips a `( … )` comment starting at `i` (which holds `(`); returns the index after `)`.
#[inline]
fn skip_paren(b: &[u8], i: usize) -> usize {
    match b[i..].iter().position(|&c| c == b')') {
        Some(p) => i + p + 1,
        None => b.len(),
    }
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses a decimal number (`-12.5`, `.8`, `+3`, `5.`) at `*i`, advancing `*i` past it.
/// No exponent (an `E` after a number is the next word). Returns `None` (having consumed
/// the characters) when there is no digit, or the magnitude is above 1e9.
#[inline]
pub(crate) fn parse_number(b: &[u8], i: &mut usize) -> Option<f64> {
    let mut j = *i;
    let mut negative = false;
    if j < b.len() && (b[j] == b'-' || b[j] == b'+') {
        negative = b[j] == b'-';
        j += 1;
    }
    let mut mantissa: u64 = 0;
    let mut digits = 0u32; // significant digits kept in the mantissa
    let mut exp: i32 = 0; // decimal exponent to apply to the mantissa
    let mut any = false;
    while j < b.len() && b[j].is_ascii_digit() {
        any = true;
        if digits < 18 {
            mantissa = mantissa * 10 + u64::from(b[j] - b'0');
            if mantissa != 0 {
                digits += 1;
            }
        } else {
            exp += 1;
        }
        j += 1;
    }
    if j < b.len() && b[j] == b'.' {
        j += 1;
        while j < b.len() && b[j].is_ascii_digit() {
            any = true;
            if digits < 18 {
                mantissa = mantissa * 10 + u64::from(b[j] - b'0');
                if mantissa != 0 {
                    digits += 1;
                }
                exp -= 1;
            }
            j += 1;
        }
    }
    *i = j;
    if !any {
        return None;
    }
    let m = mantissa as f64;
    let v = if exp >= 0 {
        if exp as usize >= POW10.len() {
            return None;
        }
        m * POW10[exp as usize]
    } else {
        let e = (-exp) as usize;
        if e < POW10.len() {
            m / POW10[e]
        } else {
            m / 10f64.powi(-exp)
        }
    };
    if v.abs() > MAX_MAGNITUDE || v.is_nan() {
        return None;
    }
    Some(if negative { -v } else { v })
}

/// Parses an unsigned integer at `*i` (for command numbers).
#[inline]
fn parse_uint(b: &[u8], i: &mut usize) -> Option<u32> {
    let start = *i;
    let mut v: u32 = 0;
    while *i < b.len() && b[*i].is_ascii_digit() {
        v = v.saturating_mul(10).saturating_add(u32::from(b[*i] - b'0'));
        *i += 1;
    }
    (*i > start).then_some(v)
}

/// Parses the code part of a line (comment already removed): an optional `N<line>` number,
/// the command word, then parameter words up to an optional `*<checksum>`.
pub(crate) fn parse_code<'a>(code: &'a [u8], words: &mut Words) -> Command<'a> {
    words.present = 0;
    words.valued = 0;
    let b = code;
    let mut i = skip_blank(b, 0);
    // Leading parenthesised comments.
    while i < b.len() && b[i] == b'(' {
        i = skip_blank(b, skip_paren(b, i));
    }
    // Line number.
    if i + 1 < b.len() && (b[i] == b'N' || b[i] == b'n') && b[i + 1].is_ascii_digit() {
        i += 1;
        let _ = parse_uint(b, &mut i);
        i = skip_blank(b, i);
    }
    if i >= b.len() || b[i] == b'*' {
        return Command::None;
    }
    let letter = b[i].to_ascii_uppercase();
    if !letter.is_ascii_alphabetic() {
        return Command::Unknown;
    }
    let next = b.get(i + 1).copied().unwrap_or(b' ');
    let after = b.get(i + 2).copied().unwrap_or(b' ');
    if letter == b'T'
        && (next.is_ascii_alphabetic() || next == b'?')
        && !after.is_ascii_alphanumeric()
    {
        // Prusa MMU `Tx` / `Tc` / `T?`.
        return Command::TOther;
    }
    if next.is_ascii_alphabetic() || next == b'_' {
        // Multi-letter command word (Klipper macros, `SET_VELOCITY_LIMIT`, `EXCLUDE_OBJECT…`).
        let end = b.iter().position(|&c| c == b'*').unwrap_or(b.len());
        return Command::Extended(&b[i..end]);
    }
    let cmd = match letter {
        b'G' | b'M' => {
            let mut j = skip_blank(b, i + 1);
            match parse_uint(b, &mut j) {
                Some(code) => {
                    let mut sub = 0;
                    if j < b.len() && b[j] == b'.' {
                        j += 1;
                        sub = parse_uint(b, &mut j).unwrap_or(0);
                    }
                    i = j;
                    if letter == b'G' {
                        Command::G(code, sub)
                    } else {
                        Command::M(code)
                    }
                }
                None => return Command::Unknown,
            }
        }
        b'T' => {
            let mut j = i + 1;
            match parse_uint(b, &mut j) {
                Some(n) => {
                    i = j;
                    Command::T(n)
                }
                None => return Command::TOther,
            }
        }
        _ => {
            // Bare parameters (e.g. a modal `X10 Y10` line): parse them as words, no command.
            Command::None
        }
    };
    // Parameter words.
    loop {
        i = skip_blank(b, i);
        if i >= b.len() || b[i] == b'*' {
            break;
        }
        let c = b[i];
        if c == b'(' {
            i = skip_paren(b, i);
            continue;
        }
        if !c.is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let idx = (c.to_ascii_uppercase() - b'A') as usize;
        i = skip_blank(b, i + 1);
        words.present |= 1 << idx;
        if i < b.len() && (b[i].is_ascii_digit() || matches!(b[i], b'-' | b'+' | b'.')) {
            if let Some(v) = parse_number(b, &mut i) {
                words.values[idx] = v;
                words.valued |= 1 << idx;
            }
        }
    }
    cmd
}

/// Finds `KEY=value` in an extended command line (case-insensitive key); returns the number.
pub(crate) fn extended_param(line: &[u8], key: &[u8]) -> Option<f64> {
    let mut i = 0;
    while i < line.len() {
        // Start of a token.
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while i < line.len() && !line[i].is_ascii_whitespace() && line[i] != b'=' {
            i += 1;
        }
        let name = &line[start..i];
        if i < line.len() && line[i] == b'=' {
            i += 1;
            if name.eq_ignore_ascii_case(key) {
                return parse_number(line, &mut i);
            }
        }
        while i < line.len() && !line[i].is_ascii_whitespace() {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Option<f64> {
        let mut i = 0;
        parse_number(s.as_bytes(), &mut i)
    }

    #[test]
    fn numbers() {
        assert_eq!(num("12"), Some(12.0));
        assert_eq!(num("-.8"), Some(-0.8));
        assert_eq!(num("+3.25"), Some(3.25));
        assert_eq!(num("5."), Some(5.0));
        assert_eq!(num("0.04829"), Some(0.04829));
        assert_eq!(num("134.443"), Some(134.443));
        assert_eq!(num("-"), None);
        assert_eq!(num("."), None);
        assert_eq!(num("99999999999999999999999999999"), None);
        assert!((num("0.000000000000000000000000000001").unwrap() - 1e-30).abs() < 1e-40);
    }

    #[test]
    fn words_and_forms() {
        let mut w = Words::default();
        assert_eq!(
            parse_code(b"G1 X10 Y-2.5 E.8 F1200", &mut w),
            Command::G(1, 0)
        );
        assert_eq!(w.get(b'X'), Some(10.0));
        assert_eq!(w.get(b'y'), Some(-2.5));
        assert_eq!(w.get(b'E'), Some(0.8));
        assert_eq!(w.get(b'F'), Some(1200.0));
        assert_eq!(w.get(b'Z'), None);

        assert_eq!(parse_code(b"N12 G1 X1*85", &mut w), Command::G(1, 0));
        assert_eq!(w.get(b'X'), Some(1.0));
        assert!(!w.has(b'N'));

        assert_eq!(parse_code(b"g1x5y6e-1", &mut w), Command::G(1, 0));
        assert_eq!(w.get(b'X'), Some(5.0));
        assert_eq!(w.get(b'E'), Some(-1.0));

        assert_eq!(parse_code(b"G28 X Y", &mut w), Command::G(28, 0));
        assert!(w.has(b'X') && w.has(b'Y') && !w.has(b'Z'));
        assert_eq!(w.get(b'X'), None);

        assert_eq!(parse_code(b"G29.1", &mut w), Command::G(29, 1));
        assert_eq!(parse_code(b"T1", &mut w), Command::T(1));
        assert_eq!(parse_code(b"Tc", &mut w), Command::TOther);
        assert_eq!(parse_code(b"  ", &mut w), Command::None);
        assert_eq!(parse_code(b"(hello) G0 (mid) X3", &mut w), Command::G(0, 0));
        assert_eq!(w.get(b'X'), Some(3.0));
        assert!(matches!(
            parse_code(b"SET_VELOCITY_LIMIT ACCEL=5000", &mut w),
            Command::Extended(_)
        ));
        assert_eq!(
            extended_param(b"SET_VELOCITY_LIMIT VELOCITY=300 ACCEL=5000", b"accel"),
            Some(5000.0)
        );
        assert_eq!(parse_code(b"\x00\xff", &mut w), Command::Unknown);
    }

    #[test]
    fn comments() {
        assert_eq!(
            split_comment(b"G1 X1 ; move"),
            (&b"G1 X1 "[..], Some(&b" move"[..]))
        );
        assert_eq!(split_comment(b"G1 X1"), (&b"G1 X1"[..], None));
    }
}
