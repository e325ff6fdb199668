//! Dense column-major matrices and the seeded problem generator.
//!
//! Entries come from a counter-based generator: entry `(i, j)` is a pure function of
//! `(seed, i, j)`, so the matrix can be generated in parallel, regenerated later for the residual
//! check without keeping a copy, and is identical on every machine and for every thread count.
//! Values are uniform in `[-0.5, 0.5)`, like HPL's generator.

/// A square matrix stored column-major: entry `(i, j)` is `data[i + j * n]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    n: usize,
    data: Vec<f64>,
}

impl Matrix {
    /// An `n × n` matrix of zeros.
    #[must_use]
    pub fn zeros(n: usize) -> Self {
        Self {
            n,
            data: vec![0.0; n * n],
        }
    }

    /// Builds a matrix from rows given in natural (row-major) reading order.
    ///
    /// # Panics
    /// If the rows do not form a square matrix.
    #[must_use]
    pub fn from_rows(rows: &[&[f64]]) -> Self {
        let n = rows.len();
        let mut m = Self::zeros(n);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(
                row.len(),
                n,
                "row {i} has {} entries, expected {n}",
                row.len()
            );
            for (j, &v) in row.iter().enumerate() {
                m.set(i, j, v);
            }
        }
        m
    }

    /// Builds a matrix from its column-major storage.
    ///
    /// # Panics
    /// If `data.len() != n * n`.
    #[must_use]
    pub fn from_column_major(n: usize, data: Vec<f64>) -> Self {
        assert_eq!(data.len(), n * n, "column-major data must have n*n entries");
        Self { n, data }
    }

    /// The seeded random LINPACK matrix of order `n` (see [`entry`]).
    #[must_use]
    pub fn random(n: usize, seed: u64) -> Self {
        let mut data = vec![0.0; n * n];
        for (j, col) in data.chunks_exact_mut(n.max(1)).enumerate() {
            for (i, v) in col.iter_mut().enumerate() {
                *v = entry(seed, i, j);
            }
        }
        Self { n, data }
    }

    /// The order of the matrix.
    #[must_use]
    pub fn n(&self) -> usize {
        self.n
    }

    /// Entry `(i, j)`.
    #[must_use]
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.data[i + j * self.n]
    }

    /// Sets entry `(i, j)`.
    pub fn set(&mut self, i: usize, j: usize, v: f64) {
        self.data[i + j * self.n] = v;
    }

    /// The column-major storage.
    #[must_use]
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// Consumes the matrix and returns its column-major storage.
    #[must_use]
    pub fn into_vec(self) -> Vec<f64> {
        self.data
    }
}

/// SplitMix64 finaliser: a bijective, well-mixing 64-bit hash.
fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps 64 random bits to a uniform value in `[-0.5, 0.5)` (53 significant bits).
fn to_centered_unit(bits: u64) -> f64 {
    // 2^-53 scaling of the top 53 bits is exact; the subtraction is exact too.
    // A 53-bit integer is exactly representable.
    let u = (bits >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0);
    u - 0.5
}

/// Column index used for the right-hand side `b` in the generator's key space.
const RHS_COLUMN: u64 = u32::MAX as u64;

fn keyed(seed: u64, i: u64, j: u64) -> f64 {
    to_centered_unit(mix64(mix64(seed) ^ ((j << 32) | i)))
}

/// Entry `(i, j)` of the seeded LINPACK matrix: uniform in `[-0.5, 0.5)`.
///
/// A pure function of its arguments; the matrix of order `n` is the leading `n × n` block of
/// every larger one with the same seed.
#[must_use]
pub fn entry(seed: u64, i: usize, j: usize) -> f64 {
    keyed(seed, i as u64, j as u64)
}

/// The seeded right-hand side `b` of order `n`, uniform in `[-0.5, 0.5)`.
#[must_use]
pub fn rhs(n: usize, seed: u64) -> Vec<f64> {
    (0..n).map(|i| keyed(seed, i as u64, RHS_COLUMN)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_deterministic_centered_and_nested() {
        let a = Matrix::random(20, 7);
        let b = Matrix::random(20, 7);
        assert_eq!(a, b);
        let big = Matrix::random(30, 7);
        for j in 0..20 {
            for i in 0..20 {
                assert_eq!(a.get(i, j).to_bits(), big.get(i, j).to_bits());
                assert!((-0.5..0.5).contains(&a.get(i, j)));
            }
        }
        assert_ne!(Matrix::random(20, 8), a);
        let mean: f64 = big.as_slice().iter().sum::<f64>() / 900.0;
        assert!(mean.abs() < 0.05, "mean {mean}");
        let r = rhs(20, 7);
        assert_eq!(r, rhs(20, 7));
        assert_ne!(r[..], a.as_slice()[..20]);
    }

    #[test]
    fn from_rows_is_row_major_reading_order() {
        let m = Matrix::from_rows(&[&[1.0, 2.0], &[3.0, 4.0]]);
        assert_eq!(m.get(0, 1), 2.0);
        assert_eq!(m.get(1, 0), 3.0);
        assert_eq!(m.as_slice(), &[1.0, 3.0, 2.0, 4.0]);
    }
}
