//! How a loaded material's colour is written, shared by the printer agent (which reads it
//! from printers and Spoolman) and the server (which checks what agents report).

/// `#RRGGBB` / `RRGGBB` (and the 8-digit forms with alpha) as `#RRGGBB[AA]`; else None.
pub fn hex_color(s: &str) -> Option<String> {
    let h = s.trim();
    let h = h.strip_prefix('#').unwrap_or(h);
    ((h.len() == 6 || h.len() == 8) && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("#{}", h.to_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::hex_color;

    #[test]
    fn colours_are_normalised_or_refused() {
        for bad in ["#12345", "#GGGGGG", "12345678901", "#ff8800;x", ""] {
            assert_eq!(hex_color(bad), None, "{bad}");
        }
        assert_eq!(hex_color(" #a1b2c3ff ").as_deref(), Some("#A1B2C3FF"));
        assert_eq!(hex_color("1e90ff").as_deref(), Some("#1E90FF"));
    }
}
