//! The HPL-style correctness check: the scaled residual
//! `‖Ax − b‖∞ / (ε · ‖A‖∞ · ‖x‖∞ · n)`, which must stay below [`THRESHOLD`].
//!
//! `A` is not kept after the factorisation (it is overwritten by `L` and `U`): the check asks for
//! its entries again from the generator, so it needs no second `n × n` buffer.

use std::sync::{Mutex, PoisonError};
use std::thread;

/// HPL's pass threshold for the scaled residual.
pub const THRESHOLD: f64 = 16.0;

/// The relative machine precision HPL uses for `ε` (`2^-53`, the unit round-off of `f64`).
pub const EPSILON: f64 = f64::EPSILON / 2.0;

/// Rows per work item of the parallel residual.
const ROW_BLOCK: usize = 256;

/// The residual check of one solve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Residual {
    /// `‖Ax − b‖∞`.
    pub residual_norm: f64,
    /// `‖A‖∞` (largest absolute row sum).
    pub a_norm: f64,
    /// `‖x‖∞`.
    pub x_norm: f64,
    /// `‖Ax − b‖∞ / (ε · ‖A‖∞ · ‖x‖∞ · n)`.
    pub scaled: f64,
}

impl Residual {
    /// Whether the scaled residual is finite and below [`THRESHOLD`].
    #[must_use]
    pub fn passed(&self) -> bool {
        self.scaled.is_finite() && self.scaled < THRESHOLD
    }
}

/// Computes the scaled residual of `x` for `A x = b`, where `entry(i, j)` gives `A`'s entries.
///
/// Rows are split among `threads` threads; each row is summed by one thread in column order, so
/// the result does not depend on the thread count.
///
/// # Panics
/// If `x` and `b` have different lengths.
pub fn scaled_residual<F>(entry: F, x: &[f64], b: &[f64], threads: usize) -> Residual
where
    F: Fn(usize, usize) -> f64 + Sync,
{
    let n = b.len();
    assert_eq!(x.len(), n, "x and b must have the same length");
    let mut r = vec![0.0; n];
    let mut row_abs = vec![0.0; n];
    let blocks = n.div_ceil(ROW_BLOCK);
    let queue = Mutex::new(
        r.chunks_mut(ROW_BLOCK)
            .zip(row_abs.chunks_mut(ROW_BLOCK))
            .enumerate(),
    );
    let worker = || {
        loop {
            let item = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
            let Some((block, (rs, sums))) = item else {
                break;
            };
            let i0 = block * ROW_BLOCK;
            for (j, &xj) in x.iter().enumerate() {
                for (i, (ri, si)) in (i0..).zip(rs.iter_mut().zip(sums.iter_mut())) {
                    let a = entry(i, j);
                    *ri += a * xj;
                    *si += a.abs();
                }
            }
            for (ri, &bi) in rs.iter_mut().zip(&b[i0..]) {
                *ri -= bi;
            }
        }
    };
    let helpers = threads.max(1).min(blocks).saturating_sub(1);
    thread::scope(|s| {
        for _ in 0..helpers {
            s.spawn(worker);
        }
        worker();
    });
    let norm = |v: &[f64]| v.iter().fold(0.0f64, |m, e| m.max(e.abs()));
    let residual_norm = norm(&r);
    let a_norm = norm(&row_abs);
    let x_norm = norm(x);
    // `n` is far below 2^53.
    let scaled = residual_norm / (EPSILON * a_norm * x_norm * n as f64);
    Residual {
        residual_norm,
        a_norm,
        x_norm,
        scaled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_solution_has_zero_residual_and_norms_are_right() {
        let a = [[2.0, -1.0], [1.0, 3.0]];
        let x = [1.0, -2.0];
        let b = [4.0, -5.0];
        let r = scaled_residual(|i, j| a[i][j], &x, &b, 2);
        assert_eq!(r.residual_norm, 0.0);
        assert_eq!(r.a_norm, 4.0);
        assert_eq!(r.x_norm, 2.0);
        assert!(r.passed());
    }

    #[test]
    fn wrong_solution_fails_and_nan_fails() {
        let a = [[2.0, -1.0], [1.0, 3.0]];
        let r = scaled_residual(|i, j| a[i][j], &[1.0, -2.0 + 1e-9], &[4.0, -5.0], 1);
        assert!(r.scaled > THRESHOLD && !r.passed(), "{r:?}");
        let r = scaled_residual(|i, j| a[i][j], &[f64::NAN, 0.0], &[4.0, -5.0], 1);
        assert!(!r.passed());
    }

    #[test]
    fn result_does_not_depend_on_thread_count() {
        let n = 700;
        let entry = |i: usize, j: usize| crate::matrix::entry(5, i, j);
        let x: Vec<f64> = (0..n).map(|i| crate::matrix::entry(6, i, 0)).collect();
        let b = crate::matrix::rhs(n, 5);
        let one = scaled_residual(entry, &x, &b, 1);
        for t in 2..5 {
            let r = scaled_residual(entry, &x, &b, t);
            assert_eq!(r.scaled.to_bits(), one.scaled.to_bits());
        }
    }
}
