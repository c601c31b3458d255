//! A minimal baseline JPEG encoder for the virtual printer's camera: grayscale images
//! made of flat 8×8 blocks, so each block needs only its DC coefficient (every AC
//! coefficient is zero and is coded as an immediate end-of-block).

/// Standard luminance DC Huffman table (JPEG spec, table K.3): code lengths 1..16.
const DC_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_VALS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

/// Encodes a grayscale image given as one level (0–255) per 8×8 block, row-major,
/// `bw` × `bh` blocks.
pub fn encode_blocks(bw: usize, bh: usize, levels: &[u8]) -> Vec<u8> {
    assert_eq!(levels.len(), bw * bh, "one level per block");
    let (w, h) = ((bw * 8) as u16, (bh * 8) as u16);
    let mut out = vec![0xFF, 0xD8]; // SOI
                                    // APP0 JFIF 1.01, no thumbnail.
    out.extend_from_slice(&[
        0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
    ]);
    // DQT: table 0, all ones (the DC values below are exact).
    out.extend_from_slice(&[0xFF, 0xDB, 0, 67, 0]);
    out.extend_from_slice(&[1u8; 64]);
    // SOF0: 8-bit, h × w, one component (id 1, 1×1 sampling, table 0).
    out.extend_from_slice(&[0xFF, 0xC0, 0, 11, 8]);
    out.extend_from_slice(&h.to_be_bytes());
    out.extend_from_slice(&w.to_be_bytes());
    out.extend_from_slice(&[1, 1, 0x11, 0]);
    // DHT: DC table 0.
    out.extend_from_slice(&[0xFF, 0xC4, 0, (3 + 16 + DC_VALS.len()) as u8, 0x00]);
    out.extend_from_slice(&DC_BITS);
    out.extend_from_slice(&DC_VALS);
    // DHT: AC table 0 with a single symbol, EOB (0x00), coded as "0".
    out.extend_from_slice(&[0xFF, 0xC4, 0, 20, 0x10, 1]);
    out.extend_from_slice(&[0u8; 15]);
    out.push(0x00);
    // SOS: one component, tables 0/0, spectral 0..63.
    out.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, 1, 0x00, 0, 63, 0]);

    let dc_codes = dc_code_table();
    let mut bits = BitWriter::default();
    let mut prev = 0i32;
    for &level in levels {
        // Forward DCT of a flat block: DC = 8 × (level − 128).
        let dc = 8 * (level as i32 - 128);
        let diff = dc - prev;
        prev = dc;
        let size = 32 - diff.unsigned_abs().leading_zeros();
        let (code, len) = dc_codes[size as usize];
        bits.put(code as u32, len);
        if size > 0 {
            let v = if diff < 0 { diff - 1 } else { diff };
            bits.put((v as u32) & ((1 << size) - 1), size as u8);
        }
        bits.put(0, 1); // EOB
    }
    out.extend_from_slice(&bits.finish());
    out.extend_from_slice(&[0xFF, 0xD9]); // EOI
    out
}

/// (code, length) for DC size categories 0..=11, derived from DC_BITS/DC_VALS.
fn dc_code_table() -> [(u16, u8); 12] {
    let mut table = [(0u16, 0u8); 12];
    let mut code = 0u16;
    let mut k = 0;
    for (i, &n) in DC_BITS.iter().enumerate() {
        for _ in 0..n {
            table[DC_VALS[k] as usize] = (code, i as u8 + 1);
            code += 1;
            k += 1;
        }
        code <<= 1;
    }
    table
}

#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    n: u8,
}

impl BitWriter {
    fn put(&mut self, value: u32, len: u8) {
        for i in (0..len).rev() {
            self.acc = (self.acc << 1) | ((value >> i) & 1);
            self.n += 1;
            if self.n == 8 {
                self.emit();
            }
        }
    }

    fn emit(&mut self) {
        let byte = self.acc as u8;
        self.out.push(byte);
        if byte == 0xFF {
            self.out.push(0x00); // byte stuffing
        }
        self.acc = 0;
        self.n = 0;
    }

    fn finish(mut self) -> Vec<u8> {
        while self.n != 0 {
            self.put(1, 1); // pad with ones
        }
        self.out
    }
}

/// A 64×48 frame: a progress bar (percent) over a background whose brightness follows
/// the nozzle temperature, so a viewer sees the print advance.
pub fn progress_frame(percent: f64, tool_temp: f64) -> Vec<u8> {
    const BW: usize = 8;
    const BH: usize = 6;
    let bg = (40.0 + (tool_temp.clamp(0.0, 250.0) / 250.0) * 60.0) as u8;
    let filled = ((percent.clamp(0.0, 100.0) / 100.0) * BW as f64).round() as usize;
    let mut levels = vec![bg; BW * BH];
    for x in 0..BW {
        levels[3 * BW + x] = if x < filled { 230 } else { 15 };
    }
    encode_blocks(BW, BH, &levels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dc_codes_match_the_standard_table() {
        let t = dc_code_table();
        assert_eq!(t[0], (0b00, 2));
        assert_eq!(t[1], (0b010, 3));
        assert_eq!(t[5], (0b110, 3));
        assert_eq!(t[6], (0b1110, 4));
        assert_eq!(t[11], (0b1_1111_1110, 9));
    }

    #[test]
    fn frames_are_well_formed() {
        let jpg = progress_frame(50.0, 215.0);
        assert_eq!(&jpg[..2], &[0xFF, 0xD8]);
        assert_eq!(&jpg[jpg.len() - 2..], &[0xFF, 0xD9]);
        assert!(jpg.len() < 2048, "small frames: {}", jpg.len());
        // Markers only where we put them: after the header every 0xFF is stuffed.
        let sos = jpg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let data = &jpg[sos + 10..jpg.len() - 2];
        for (i, w) in data.windows(2).enumerate() {
            if w[0] == 0xFF {
                assert_eq!(w[1], 0x00, "unstuffed 0xFF at {i}");
            }
        }
        assert_ne!(progress_frame(10.0, 20.0), jpg);
    }
}
