//! Blocked, right-looking LU factorisation with partial pivoting (`PA = LU`), multithreaded and
//! resumable at column boundaries.
//!
//! # Algorithm
//! For each panel of `nb` columns starting at column `k`:
//! 1. **Panel**: unblocked LU of the `(n-k) × nb` panel with partial pivoting; the row
//!    interchanges are then applied to the columns left of the panel, and the `L` part below the
//!    panel is packed into `MR`-row slivers for the update kernel.
//! 2. **Trailing update** (all threads): the columns right of the panel are cut into chunks of
//!    [`CHUNK_COLS`] columns handed out in ascending order. For each column the thread applies the
//!    panel's row interchanges, the unit-lower triangular solve with `L11` and the update
//!    `A22 -= L21 · U12` with a register-blocked kernel.
//!
//! **Look-ahead**: the calling thread first updates the next panel's columns itself and factors
//! that panel while the other threads update the rest, so the (sequential) panel factorisation
//! is hidden behind the parallel update instead of leaving the other threads idle.
//!
//! # Determinism
//! Every element is updated by exactly one thread, always as `a -= l * u` for `p` ascending
//! (Rust never contracts this into a fused multiply-add). The arithmetic sequence of each element
//! is therefore independent of the thread count, of which thread took which chunk, of the chunk
//! boundaries, of the register blocking and even of the block size `nb`: the factors are
//! bit-identical for any of them. This is what lets a checkpointed run resume with a different
//! thread count and still produce the same bits.
//!
//! # Resumable state
//! The state between steps is `(k, stage)` plus the matrix and pivots: [`Stage::Panel`] (the panel
//! at `k` is next) or [`Stage::Update`] (panel factored, trailing columns `k+nb .. upto` already
//! updated, and possibly the next panel already factored by the look-ahead). A stop request is
//! honoured between chunks, so the factorisation stops within one chunk's work (milliseconds)
//! and [`Lu::factor`] can later continue from exactly that state.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;

use crate::matrix::Matrix;

/// Default panel width `nb`.
pub const DEFAULT_BLOCK: usize = 64;
/// Largest accepted panel width.
pub const MAX_BLOCK: usize = 512;
/// Trailing columns per work item of the parallel update (the stop granularity).
pub const CHUNK_COLS: usize = 32;

/// Rows per register tile of the update kernel.
const MR: usize = 4;
/// Columns per register tile of the update kernel.
const NR: usize = 4;
/// Slivers per cache block of packed `L` (`MC_SLIVERS * MR` rows, kept in L2).
const MC_SLIVERS: usize = 64;

/// Where the factorisation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The panel starting at the current column is the next step.
    Panel,
    /// The panel at the current column is factored (its pivots are final and applied to the
    /// columns on its left); the trailing columns from the end of the panel up to `upto`
    /// (exclusive) are updated.
    Update {
        /// First trailing column not yet updated.
        upto: usize,
        /// Whether the next panel (already updated, so `upto` is past it) is factored too: its
        /// pivots are final and applied within its own columns; the interchanges on the columns
        /// to its left wait until the current panel's update is complete.
        next_factored: bool,
    },
}

/// Why [`Lu::factor`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The factorisation is complete.
    Finished,
    /// A stop was requested; the state is consistent and can be saved and resumed.
    Stopped,
}

/// Factorisation failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LuError {
    /// No non-zero pivot exists in a column: the matrix is singular (to working precision).
    #[error(
        "the matrix is singular: column {column} has no non-zero pivot (exact zero after \
         elimination), so Ax = b has no unique solution"
    )]
    Singular {
        /// The zero-based column whose pivot is zero.
        column: usize,
    },
    /// Parts given to [`Lu::from_parts`] are inconsistent.
    #[error("inconsistent factorisation state: {0}")]
    Inconsistent(String),
}

/// An LU factorisation in progress (or finished), in place over the matrix.
#[derive(Debug, Clone)]
pub struct Lu {
    n: usize,
    nb: usize,
    a: Vec<f64>,
    ipiv: Vec<usize>,
    k: usize,
    stage: Stage,
    /// Packed `L21` of the current panel (valid in [`Stage::Update`]); derived, never saved.
    packed: Vec<f64>,
}

impl Lu {
    /// Starts factoring `matrix` with panel width `nb` (clamped to `1..=MAX_BLOCK`).
    #[must_use]
    pub fn new(matrix: Matrix, nb: usize) -> Self {
        let n = matrix.n();
        Self {
            n,
            nb: nb.clamp(1, MAX_BLOCK),
            a: matrix.into_vec(),
            ipiv: (0..n).collect(),
            k: 0,
            stage: Stage::Panel,
            packed: Vec::new(),
        }
    }

    /// Rebuilds a factorisation state saved from [`Lu::matrix`] (with [`Lu::n`]),
    /// [`Lu::pivots`], [`Lu::column`] and [`Lu::stage`], checking that the parts are consistent.
    ///
    /// # Errors
    /// [`LuError::Inconsistent`] when sizes, indices or the stage do not fit together.
    pub fn from_parts(
        matrix: Matrix,
        nb: usize,
        ipiv: Vec<usize>,
        k: usize,
        stage: Stage,
    ) -> Result<Self, LuError> {
        let bad = |m: String| Err(LuError::Inconsistent(m));
        let n = matrix.n();
        if !(1..=MAX_BLOCK).contains(&nb) {
            return bad(format!("block size {nb} outside 1..={MAX_BLOCK}"));
        }
        if ipiv.len() != n {
            return bad(format!("{} pivots, expected {n}", ipiv.len()));
        }
        if let Some((p, &q)) = ipiv.iter().enumerate().find(|&(p, &q)| q < p || q >= n) {
            return bad(format!("pivot of row {p} is {q}, outside {p}..{n}"));
        }
        if k > n || (k < n && k % nb != 0) {
            return bad(format!(
                "column {k} is not a panel boundary for n={n}, nb={nb}"
            ));
        }
        if let Stage::Update {
            upto,
            next_factored,
        } = stage
        {
            let mut end = k + nb.min(n.saturating_sub(k));
            if next_factored {
                if end >= n {
                    return bad(format!("no panel after the last one at column {k}"));
                }
                end += nb.min(n - end);
            }
            if k >= n || upto < end || upto > n {
                return bad(format!(
                    "update progress {upto} outside {end}..={n} at column {k}"
                ));
            }
        }
        let mut lu = Self {
            n,
            nb,
            a: matrix.into_vec(),
            ipiv,
            k,
            stage,
            packed: Vec::new(),
        };
        if matches!(stage, Stage::Update { .. }) {
            lu.pack();
        }
        Ok(lu)
    }

    /// Order of the matrix.
    #[must_use]
    pub fn n(&self) -> usize {
        self.n
    }

    /// Panel width.
    #[must_use]
    pub fn block(&self) -> usize {
        self.nb
    }

    /// The matrix storage (column-major): `L` (unit diagonal implied) below, `U` on and above the
    /// diagonal for the factored part, the partially updated matrix elsewhere.
    #[must_use]
    pub fn matrix(&self) -> &[f64] {
        &self.a
    }

    /// Pivot rows, LAPACK style (zero-based): row `p` was interchanged with row `pivots()[p]`.
    /// Entries of columns not yet factored are `p` itself.
    #[must_use]
    pub fn pivots(&self) -> &[usize] {
        &self.ipiv
    }

    /// First column of the current panel (`n` once finished).
    #[must_use]
    pub fn column(&self) -> usize {
        self.k
    }

    /// The step the factorisation is at.
    #[must_use]
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Whether the factorisation is complete.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.k >= self.n
    }

    /// Number of columns whose elimination is complete (a monotone measure for messages).
    #[must_use]
    pub fn columns_done(&self) -> usize {
        self.k.min(self.n)
    }

    /// Total work of the factorisation, in floating-point operations of this algorithm.
    #[must_use]
    pub fn work_total(&self) -> f64 {
        work_before(self.n, self.nb, self.n)
    }

    /// Work done so far, in the unit of [`Lu::work_total`].
    #[must_use]
    pub fn work_done(&self) -> f64 {
        let base = work_before(self.n, self.nb, self.k);
        match self.stage {
            Stage::Panel => base,
            Stage::Update {
                upto,
                next_factored,
            } => {
                let m = self.n - self.k;
                let b = self.nb.min(m);
                let next = if next_factored {
                    panel_work(m - b, self.nb.min(m - b))
                } else {
                    0.0
                };
                base + panel_work(m, b) + count(upto - self.k - b) * column_work(m, b) + next
            }
        }
    }

    /// Runs the factorisation with `threads` threads until it is finished or `stop` is set.
    ///
    /// `stop` is checked between panels and between chunks of the trailing update. `progress`
    /// is called (from any of the threads) with the work done so far, in the unit of
    /// [`Lu::work_total`].
    ///
    /// # Errors
    /// [`LuError::Singular`] when a column has no non-zero pivot; the state is then unusable.
    pub fn factor(
        &mut self,
        threads: usize,
        stop: &AtomicBool,
        progress: &(dyn Fn(f64) + Sync),
    ) -> Result<Outcome, LuError> {
        let threads = threads.max(1);
        loop {
            if self.k >= self.n {
                return Ok(Outcome::Finished);
            }
            match self.stage {
                Stage::Panel => {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(Outcome::Stopped);
                    }
                    let (n, k) = (self.n, self.k);
                    let end = k + self.nb.min(n - k);
                    factor_panel(&mut self.a[k * n..end * n], n, k, &mut self.ipiv[k..end])?;
                    self.start_update();
                    progress(self.work_done());
                }
                Stage::Update {
                    upto,
                    next_factored,
                } => {
                    if upto >= self.n {
                        self.k += self.nb.min(self.n - self.k);
                        if next_factored {
                            self.start_update();
                            progress(self.work_done());
                        } else {
                            self.stage = Stage::Panel;
                        }
                        continue;
                    }
                    let (upto, next_factored) = self.update_trailing(threads, stop, progress)?;
                    self.stage = Stage::Update {
                        upto,
                        next_factored,
                    };
                    if upto < self.n {
                        return Ok(Outcome::Stopped);
                    }
                }
            }
        }
    }

    /// With the panel at `k` factored: applies its interchanges to the columns on its left, packs
    /// its `L21` and enters the update stage.
    fn start_update(&mut self) {
        let (n, k) = (self.n, self.k);
        let b = self.nb.min(n - k);
        for p in k..k + b {
            let q = self.ipiv[p];
            if q != p {
                for j in 0..k {
                    self.a.swap(p + j * n, q + j * n);
                }
            }
        }
        self.stage = Stage::Update {
            upto: k + b,
            next_factored: false,
        };
        self.pack();
    }

    /// Packs `L21` of the current panel into zero-padded `MR`-row slivers:
    /// `packed[s * MR * b + p * MR + r] = L[k + b + s * MR + r, k + p]`.
    fn pack(&mut self) {
        let (n, k) = (self.n, self.k);
        let b = self.nb.min(n - k);
        let r0 = k + b;
        let slivers = (n - r0).div_ceil(MR);
        self.packed.clear();
        self.packed.resize(slivers * MR * b, 0.0);
        for p in 0..b {
            let col = &self.a[(k + p) * n + r0..(k + p + 1) * n];
            for (s, rows) in col.chunks(MR).enumerate() {
                let at = s * MR * b + p * MR;
                self.packed[at..at + rows.len()].copy_from_slice(rows);
            }
        }
    }

    /// Parallel trailing update from the current `upto`, with the look-ahead; returns the new
    /// `upto` and whether the next panel is factored.
    fn update_trailing(
        &mut self,
        threads: usize,
        stop: &AtomicBool,
        progress: &(dyn Fn(f64) + Sync),
    ) -> Result<(usize, bool), LuError> {
        let (n, k) = (self.n, self.k);
        let Stage::Update {
            upto,
            next_factored,
        } = self.stage
        else {
            return Ok((k, false));
        };
        let b = self.nb.min(n - k);
        let r1 = k + b;
        // The look-ahead runs at the start of an update only: its columns then come first, so the
        // updated columns always form a prefix whatever the stop request interrupts.
        let look = if next_factored || upto != r1 || r1 >= n {
            0
        } else {
            self.nb.min(n - r1)
        };
        let m = n - k;
        let base = work_before(n, self.nb, k) + panel_work(m, b);
        let per_column = column_work(m, b);
        let (head, tail) = self.a.split_at_mut(upto * n);
        let (look_cols, rest) = tail.split_at_mut(look * n);
        let (ipiv_done, ipiv_next) = self.ipiv.split_at_mut(r1);
        let panel = Panel {
            n,
            k,
            b,
            l: &head[k * n..r1 * n],
            ipiv: &ipiv_done[k..],
            packed: &self.packed,
        };
        let total_chunks = (n - upto - look).div_ceil(CHUNK_COLS);
        let queue = Mutex::new(rest.chunks_mut(CHUNK_COLS * n));
        let done = AtomicUsize::new(upto - r1);
        let worker = || {
            let mut ubuf = vec![0.0; NR * b];
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
                let Some(chunk) = next else { break };
                panel.update_columns(chunk, &mut ubuf);
                let cols = chunk.len() / n;
                let d = done.fetch_add(cols, Ordering::Relaxed) + cols;
                progress(base + count(d) * per_column);
            }
        };
        let helpers = (threads - 1).min(total_chunks);
        let factored = thread::scope(|s| {
            for _ in 0..helpers {
                s.spawn(worker);
            }
            let mut factored = Ok(next_factored);
            if look > 0 {
                // Always completed once the update has started (keeps the prefix invariant).
                panel.update_columns(look_cols, &mut vec![0.0; NR * b]);
                let d = done.fetch_add(look, Ordering::Relaxed) + look;
                progress(base + count(d) * per_column);
                if !stop.load(Ordering::Relaxed) {
                    factored =
                        factor_panel(look_cols, n, r1, &mut ipiv_next[..look]).map(|()| true);
                }
            }
            if factored.is_ok() {
                worker();
            }
            factored
        })?;
        let remaining = queue
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        let upto = (upto + look + (total_chunks - remaining) * CHUNK_COLS).min(n);
        Ok((upto, factored))
    }

    /// Solves `A x = b` with the finished factorisation (forward and back substitution).
    ///
    /// # Panics
    /// If the factorisation is not finished or `b` has the wrong length.
    #[must_use]
    pub fn solve(&self, b: &[f64]) -> Vec<f64> {
        assert!(self.is_finished(), "solve needs a finished factorisation");
        assert_eq!(b.len(), self.n, "right-hand side has the wrong length");
        let n = self.n;
        let mut x = b.to_vec();
        for (p, &q) in self.ipiv.iter().enumerate() {
            x.swap(p, q);
        }
        for (j, col) in self.a.chunks_exact(n.max(1)).enumerate() {
            let xj = x[j];
            for (xi, &l) in x[j + 1..].iter_mut().zip(&col[j + 1..]) {
                *xi -= l * xj;
            }
        }
        for (j, col) in self.a.chunks_exact(n.max(1)).enumerate().rev() {
            x[j] /= col[j];
            let xj = x[j];
            for (xi, &u) in x[..j].iter_mut().zip(&col[..j]) {
                *xi -= u * xj;
            }
        }
        x
    }
}

/// Read-only view of a factored panel, shared by the update threads.
struct Panel<'a> {
    n: usize,
    k: usize,
    b: usize,
    /// Columns `k .. k+b` of the matrix.
    l: &'a [f64],
    /// Pivots of the panel's columns (absolute row indices).
    ipiv: &'a [usize],
    packed: &'a [f64],
}

impl Panel<'_> {
    /// Applies the panel to a chunk of whole trailing columns.
    fn update_columns(&self, chunk: &mut [f64], ubuf: &mut [f64]) {
        let (n, k, b) = (self.n, self.k, self.b);
        for col in chunk.chunks_exact_mut(n) {
            for (p, &q) in (k..).zip(self.ipiv) {
                col.swap(p, q);
            }
            // U12 = L11^-1 A12, column by column, p ascending.
            for p in 0..b {
                let u = col[k + p];
                let l = &self.l[p * n + k + p + 1..p * n + k + b];
                for (c, &li) in col[k + p + 1..k + b].iter_mut().zip(l) {
                    *c -= li * u;
                }
            }
        }
        let r0 = k + b;
        if r0 >= n {
            return;
        }
        let ncols = chunk.len() / n;
        let slivers = (n - r0).div_ceil(MR);
        let sliver_len = MR * b;
        for s0 in (0..slivers).step_by(MC_SLIVERS) {
            let s1 = (s0 + MC_SLIVERS).min(slivers);
            for g in (0..ncols).step_by(NR) {
                let nc = NR.min(ncols - g);
                for (p, u) in ubuf.chunks_exact_mut(NR).enumerate() {
                    for (c, v) in u.iter_mut().enumerate() {
                        *v = if c < nc {
                            chunk[(g + c) * n + k + p]
                        } else {
                            0.0
                        };
                    }
                }
                for s in s0..s1 {
                    let row = r0 + s * MR;
                    let rows = MR.min(n - row);
                    let lp = &self.packed[s * sliver_len..(s + 1) * sliver_len];
                    tile(lp, ubuf, chunk, n, g * n + row, nc, rows);
                }
            }
        }
    }
}

/// Unblocked LU with partial pivoting of one panel: `cols` holds its `ipiv.len()` columns (each
/// `n` long), the first of which is column `d0` of the matrix, so its diagonal starts at row `d0`.
/// Interchanges are applied within the panel only; `ipiv` receives the (absolute) pivot rows.
fn factor_panel(cols: &mut [f64], n: usize, d0: usize, ipiv: &mut [usize]) -> Result<(), LuError> {
    for (p, piv_out) in ipiv.iter_mut().enumerate() {
        let d = d0 + p;
        let col = &cols[p * n..(p + 1) * n];
        let mut piv = d;
        let mut best = col[d].abs();
        for (i, v) in col.iter().enumerate().skip(d + 1) {
            if v.abs() > best {
                best = v.abs();
                piv = i;
            }
        }
        if best == 0.0 || best.is_nan() {
            return Err(LuError::Singular { column: d });
        }
        *piv_out = piv;
        if piv != d {
            for c in cols.chunks_exact_mut(n) {
                c.swap(d, piv);
            }
        }
        let pivot = cols[p * n + d];
        for v in &mut cols[p * n + d + 1..(p + 1) * n] {
            *v /= pivot;
        }
        let (left, right) = cols.split_at_mut((p + 1) * n);
        let l = &left[p * n + d + 1..];
        for cj in right.chunks_exact_mut(n) {
            let u = cj[d];
            for (c, &li) in cj[d + 1..].iter_mut().zip(l) {
                *c -= li * u;
            }
        }
    }
    Ok(())
}

/// `C[rows × nc] -= Lp · Up` for one register tile. `C` starts at `chunk[at]` with column
/// stride `n`; `lp` holds `b` groups of `MR` values, `up` holds `b` groups of `NR` values.
#[inline]
fn tile(lp: &[f64], up: &[f64], chunk: &mut [f64], n: usize, at: usize, nc: usize, rows: usize) {
    let mut acc = [[0.0f64; MR]; NR];
    for (c, accc) in acc.iter_mut().enumerate().take(nc) {
        let start = at + c * n;
        if rows == MR {
            // Fixed length: a register load, not a `memcpy` call.
            *accc = chunk[start..start + MR].try_into().expect("MR values");
        } else {
            accc[..rows].copy_from_slice(&chunk[start..start + rows]);
        }
    }
    for (l, u) in lp.chunks_exact(MR).zip(up.chunks_exact(NR)) {
        let l: &[f64; MR] = l.try_into().expect("chunks_exact yields MR values");
        let u: &[f64; NR] = u.try_into().expect("chunks_exact yields NR values");
        for (accc, &uc) in acc.iter_mut().zip(u) {
            for (a, &lr) in accc.iter_mut().zip(l) {
                *a -= lr * uc;
            }
        }
    }
    for (c, accc) in acc.iter().enumerate().take(nc) {
        let start = at + c * n;
        if rows == MR {
            let dst: &mut [f64; MR] = (&mut chunk[start..start + MR])
                .try_into()
                .expect("MR values");
            *dst = *accc;
        } else {
            chunk[start..start + rows].copy_from_slice(&accc[..rows]);
        }
    }
}

// Counts of matrix elements are far below 2^53.
fn count(x: usize) -> f64 {
    x as f64
}

/// Work of the unblocked factorisation of an `m × b` panel (divisions and multiply-adds).
fn panel_work(m: usize, b: usize) -> f64 {
    (0..b)
        .map(|p| {
            let below = count(m - p - 1);
            below + 2.0 * below * count(b - p - 1)
        })
        .sum()
}

/// Work of updating one trailing column with a panel of width `b` over `m` rows.
fn column_work(m: usize, b: usize) -> f64 {
    count(b * (b - 1)) + 2.0 * count(m - b) * count(b)
}

/// Work of all panels (with their trailing updates) that start before column `k`.
fn work_before(n: usize, nb: usize, k: usize) -> f64 {
    (0..k.min(n))
        .step_by(nb.max(1))
        .map(|c| {
            let m = n - c;
            let b = nb.min(m);
            panel_work(m, b) + count(m - b) * column_work(m, b)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{self, Matrix};

    fn no_progress(_: f64) {}

    fn factor(m: &Matrix, nb: usize, threads: usize) -> Lu {
        let mut lu = Lu::new(m.clone(), nb);
        let out = lu
            .factor(threads, &AtomicBool::new(false), &no_progress)
            .unwrap();
        assert_eq!(out, Outcome::Finished);
        lu
    }

    /// Reference: textbook unblocked right-looking LU with partial pivoting.
    fn reference(m: &Matrix) -> (Vec<f64>, Vec<usize>) {
        let n = m.n();
        let mut a = m.as_slice().to_vec();
        let mut ipiv = vec![0; n];
        for p in 0..n {
            let mut piv = p;
            for i in p + 1..n {
                if a[i + p * n].abs() > a[piv + p * n].abs() {
                    piv = i;
                }
            }
            ipiv[p] = piv;
            for j in 0..n {
                a.swap(p + j * n, piv + j * n);
            }
            let pivot = a[p + p * n];
            for i in p + 1..n {
                a[i + p * n] /= pivot;
            }
            for j in p + 1..n {
                let u = a[p + j * n];
                for i in p + 1..n {
                    a[i + j * n] -= a[i + p * n] * u;
                }
            }
        }
        (a, ipiv)
    }

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn blocked_parallel_lu_is_bit_identical_to_the_textbook_algorithm() {
        for &n in &[1, 2, 5, 37, 70, 131] {
            let m = Matrix::random(n, 11);
            let (ra, rp) = reference(&m);
            for &(nb, threads) in &[(1, 1), (3, 2), (8, 3), (64, 1), (64, 2), (16, 5)] {
                let lu = factor(&m, nb, threads);
                assert_eq!(lu.pivots(), &rp[..], "n={n} nb={nb} t={threads}");
                assert_eq!(bits(lu.matrix()), bits(&ra), "n={n} nb={nb} t={threads}");
            }
        }
    }

    #[test]
    fn solves_a_known_system() {
        // 2x + y + z = 5, 4x - 6y = -2, -2x + 7y + 2z = 9  =>  x = 1, y = 1, z = 2.
        let m = Matrix::from_rows(&[&[2.0, 1.0, 1.0], &[4.0, -6.0, 0.0], &[-2.0, 7.0, 2.0]]);
        let lu = factor(&m, 2, 2);
        let x = lu.solve(&[5.0, -2.0, 9.0]);
        for (got, want) in x.iter().zip([1.0, 1.0, 2.0]) {
            assert!((got - want).abs() < 1e-14, "{x:?}");
        }
        // A permutation matrix needs pivoting on every column.
        let p = Matrix::from_rows(&[&[0.0, 0.0, 1.0], &[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0]]);
        let x = factor(&p, 1, 1).solve(&[3.0, 1.0, 2.0]);
        assert_eq!(x, vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn singular_matrix_is_a_clear_error() {
        // Second row = 2 × first row (elimination is exact in binary floating point).
        let m = Matrix::from_rows(&[&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0], &[0.0, 1.0, 1.0]]);
        let mut lu = Lu::new(m, 64);
        let err = lu
            .factor(2, &AtomicBool::new(false), &no_progress)
            .unwrap_err();
        assert_eq!(err, LuError::Singular { column: 2 });
        assert!(err.to_string().contains("singular"));
        let mut zero_col = Lu::new(Matrix::from_rows(&[&[1.0, 0.0], &[2.0, 0.0]]), 1);
        let err = zero_col
            .factor(1, &AtomicBool::new(false), &no_progress)
            .unwrap_err();
        assert_eq!(err, LuError::Singular { column: 1 });
    }

    #[test]
    fn stop_and_continue_gives_the_same_bits_with_other_thread_counts() {
        let n = 150;
        let m = Matrix::random(n, 3);
        let want = factor(&m, 16, 1);
        let mut lu = Lu::new(m, 16);
        let stop = AtomicBool::new(false);
        let mut stops = 0;
        // Stop after a few progress reports, then continue with a different thread count.
        for round in 0.. {
            let calls = AtomicUsize::new(0);
            let stop_soon = |_: f64| {
                if calls.fetch_add(1, Ordering::Relaxed) >= round % 4 {
                    stop.store(true, Ordering::Relaxed);
                }
            };
            stop.store(false, Ordering::Relaxed);
            match lu.factor(1 + round % 3, &stop, &stop_soon).unwrap() {
                Outcome::Finished => break,
                Outcome::Stopped => stops += 1,
            }

            // Round-trip through the saved parts, as a checkpoint does.
            lu = Lu::from_parts(
                Matrix::from_column_major(lu.n(), lu.matrix().to_vec()),
                lu.block(),
                lu.pivots().to_vec(),
                lu.column(),
                lu.stage(),
            )
            .unwrap();
        }
        assert!(stops > 5, "only {stops} stops");
        assert_eq!(bits(lu.matrix()), bits(want.matrix()));
        assert_eq!(lu.pivots(), want.pivots());
        let b = matrix::rhs(n, 3);
        assert_eq!(bits(&lu.solve(&b)), bits(&want.solve(&b)));
    }

    #[test]
    fn every_stage_can_be_stopped_in_and_resumed_from() {
        let n = 100;
        let m = Matrix::random(n, 8);
        let want = factor(&m, 16, 1);
        let mut stages = std::collections::HashSet::new();
        for after in 0..12 {
            let mut lu = Lu::new(m.clone(), 16);
            // `after == 0`: stopped before it starts, in the panel stage.
            let stop = AtomicBool::new(after == 0);
            let calls = AtomicUsize::new(1);
            let stop_after = |_: f64| {
                if calls.fetch_add(1, Ordering::Relaxed) >= after {
                    stop.store(true, Ordering::Relaxed);
                }
            };
            // One thread: the stop point is deterministic.
            assert_eq!(lu.factor(1, &stop, &stop_after).unwrap(), Outcome::Stopped);
            stages.insert(match lu.stage() {
                Stage::Panel => "panel",
                Stage::Update {
                    next_factored: false,
                    ..
                } => "update",
                Stage::Update {
                    next_factored: true,
                    ..
                } => "update with the next panel factored",
            });
            let mut lu = Lu::from_parts(
                Matrix::from_column_major(n, lu.matrix().to_vec()),
                16,
                lu.pivots().to_vec(),
                lu.column(),
                lu.stage(),
            )
            .unwrap();
            let out = lu.factor(2, &AtomicBool::new(false), &no_progress).unwrap();
            assert_eq!(out, Outcome::Finished);
            assert_eq!(
                bits(lu.matrix()),
                bits(want.matrix()),
                "stopped after {after}"
            );
            assert_eq!(lu.pivots(), want.pivots());
        }
        assert_eq!(stages.len(), 3, "{stages:?}");
    }

    #[test]
    fn work_accounting_is_monotone_and_complete() {
        let n = 100;
        let mut lu = Lu::new(Matrix::random(n, 1), 16);
        let total = lu.work_total();
        // Close to the classical 2/3 n^3 operation count.
        let classical = 2.0 / 3.0 * count(n * n * n);
        assert!(
            (total / classical - 1.0).abs() < 0.05,
            "{total} vs {classical}"
        );
        let seen = Mutex::new(Vec::new());
        let record = |w: f64| seen.lock().unwrap().push(w);
        lu.factor(1, &AtomicBool::new(false), &record).unwrap();
        let seen = seen.into_inner().unwrap();
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
        assert!((seen.last().copied().unwrap() - total).abs() < 1e-6 * total);
        assert!((lu.work_done() - total).abs() < 1e-6 * total);
    }

    #[test]
    fn from_parts_rejects_inconsistent_state() {
        let ok = |k, stage| Lu::from_parts(Matrix::zeros(4), 2, vec![0, 1, 2, 3], k, stage);
        let update = |upto, next_factored| Stage::Update {
            upto,
            next_factored,
        };
        assert!(ok(2, Stage::Panel).is_ok());
        assert!(ok(2, update(4, false)).is_ok());
        assert!(ok(0, update(4, true)).is_ok());
        assert!(ok(1, Stage::Panel).is_err());
        assert!(ok(2, update(3, false)).is_err());
        assert!(ok(0, update(3, true)).is_err());
        assert!(ok(2, update(4, true)).is_err());
        let m = Matrix::zeros(4);
        assert!(Lu::from_parts(m.clone(), 2, vec![0, 1, 2], 0, Stage::Panel).is_err());
        assert!(Lu::from_parts(m.clone(), 2, vec![1, 0, 2, 3], 0, Stage::Panel).is_err());
        assert!(Lu::from_parts(m, 0, vec![0, 1, 2, 3], 0, Stage::Panel).is_err());
    }
}
