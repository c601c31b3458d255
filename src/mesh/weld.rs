//! Welding exactly equal vertex positions (hashing the `f32` bit patterns).
//!
//! A small open-addressing table of `u32` indices into the vertex array (the positions are not
//! copied into the table): 4 bytes per slot at most 50 % full, about a quarter of the memory of
//! a `HashMap<[u32; 3], u32>` and, being that much smaller, far fewer cache misses on meshes
//! with millions of triangles.

/// A position as its three `f32` bit patterns; `-0.0` is folded into `0.0` so both weld.
#[derive(Clone, Copy, PartialEq, Eq)]
struct PosKey([u32; 3]);

impl PosKey {
    #[inline]
    fn new(p: [f32; 3]) -> PosKey {
        // Adding +0.0 turns -0.0 into +0.0 and leaves every other value as is.
        PosKey([
            (p[0] + 0.0).to_bits(),
            (p[1] + 0.0).to_bits(),
            (p[2] + 0.0).to_bits(),
        ])
    }

    #[inline]
    fn hash(self) -> u64 {
        let [x, y, z] = self.0;
        let mut h = (u64::from(x) | (u64::from(y) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= u64::from(z).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        // The 64-bit finaliser of MurmurHash3: every input bit reaches the low (slot) bits.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Slots hold `index + 1` into a caller-owned position array; 0 is empty.
struct PositionTable {
    slots: Vec<u32>,
    len: usize,
}

impl PositionTable {
    fn with_capacity(positions: usize) -> PositionTable {
        let size = (positions.saturating_mul(2)).max(16).next_power_of_two();
        PositionTable {
            slots: vec![0; size],
            len: 0,
        }
    }

    /// `Ok(index)` of the position equal to `key`, or `Err(slot)` where it would go.
    #[inline]
    fn find(&self, key: PosKey, points: &[[f32; 3]]) -> Result<u32, usize> {
        let mask = self.slots.len() - 1;
        let mut slot = key.hash() as usize & mask;
        loop {
            match self.slots[slot] {
                0 => return Err(slot),
                stored => {
                    let index = stored - 1;
                    if PosKey::new(points[index as usize]) == key {
                        return Ok(index);
                    }
                }
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Records `index` (whose position is `points[index]`) at a slot returned by [`find`].
    #[inline]
    fn insert_at(&mut self, slot: usize, index: u32, points: &[[f32; 3]]) {
        self.slots[slot] = index + 1;
        self.len += 1;
        if self.len * 2 > self.slots.len() {
            self.grow(points);
        }
    }

    fn grow(&mut self, points: &[[f32; 3]]) {
        let doubled = vec![0; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        let mask = self.slots.len() - 1;
        for stored in old.into_iter().filter(|&s| s != 0) {
            let mut slot = PosKey::new(points[(stored - 1) as usize]).hash() as usize & mask;
            while self.slots[slot] != 0 {
                slot = (slot + 1) & mask;
            }
            self.slots[slot] = stored;
        }
    }
}

/// Builds an indexed mesh from a triangle soup, welding exactly equal positions.
pub(crate) struct WeldingBuilder {
    table: PositionTable,
    vertices: Vec<[f32; 3]>,
    triangles: Vec<[u32; 3]>,
}

impl WeldingBuilder {
    /// `expected_triangles` is only a capacity hint (pass 0 when the count is not trustworthy).
    pub(crate) fn new(expected_triangles: usize) -> WeldingBuilder {
        // A closed mesh has about half as many vertices as triangles.
        let expected_vertices = expected_triangles / 2 + 8;
        WeldingBuilder {
            table: PositionTable::with_capacity(expected_vertices),
            vertices: Vec::with_capacity(expected_vertices),
            triangles: Vec::with_capacity(expected_triangles),
        }
    }

    #[inline]
    fn vertex(&mut self, p: [f32; 3]) -> u32 {
        match self.table.find(PosKey::new(p), &self.vertices) {
            Ok(index) => index,
            Err(slot) => {
                let index = self.vertices.len() as u32;
                self.vertices.push(p);
                self.table.insert_at(slot, index, &self.vertices);
                index
            }
        }
    }

    /// Adds one triangle. Fails (returns `false`) when the vertex count would overflow `u32`.
    #[inline]
    pub(crate) fn push(&mut self, corners: [[f32; 3]; 3]) -> bool {
        if self.vertices.len() > (u32::MAX / 2) as usize {
            return false;
        }
        let a = self.vertex(corners[0]);
        let b = self.vertex(corners[1]);
        let c = self.vertex(corners[2]);
        self.triangles.push([a, b, c]);
        true
    }

    pub(crate) fn triangle_count(&self) -> usize {
        self.triangles.len()
    }

    pub(crate) fn finish(self) -> super::Mesh {
        let WeldingBuilder {
            table,
            mut vertices,
            mut triangles,
        } = self;
        drop(table);
        vertices.shrink_to_fit();
        triangles.shrink_to_fit();
        super::Mesh {
            vertices,
            triangles,
        }
    }
}

/// For every vertex of `vertices`, the compact id of its position (equal positions share an id,
/// ids are numbered in order of first appearance); returns the ids and the number of distinct
/// positions.
pub(crate) fn weld_ids(vertices: &[[f32; 3]]) -> (Vec<u32>, u32) {
    let mut table = PositionTable::with_capacity(vertices.len());
    let mut ids = Vec::with_capacity(vertices.len());
    let mut next = 0u32;
    for (i, &p) in vertices.iter().enumerate() {
        match table.find(PosKey::new(p), vertices) {
            Ok(first) => ids.push(ids[first as usize]),
            Err(slot) => {
                ids.push(next);
                next += 1;
                table.insert_at(slot, i as u32, vertices);
            }
        }
    }
    (ids, next)
}
