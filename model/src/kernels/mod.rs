//! Fast CPU kernels for the UNet's hot operations: 3x3 convolutions (Winograd F(2x2, 3x3) over
//! the `gemm` crate), other convolutions (im2col + gemm), group norm fused with its affine
//! or conditional modulation and SiLU, and multi-head self-attention fused per query.
//!
//! candle's own CPU convolution runs at a third of what the machine can do and its group norm
//! needs a dozen passes over memory; these kernels are what makes the CPU runtime as fast as
//! PyTorch. The forward kernels only run in inference: a layer takes the fast path when [`kernel_path`] is
//! [`KernelPath::Fast`] and every tensor involved is an f32 CPU tensor that does not track
//! gradients (`Tensor::track_op`). Otherwise the layer runs the plain candle ops, which stay the
//! reference the fast path is tested against (`model/tests/model/kernels.rs`) and the path autograd
//! uses.

pub mod attention;
pub mod conv;
pub mod conv_grad;
pub mod math;
pub mod norm;
pub mod norm_grad;

use std::cell::Cell;
use std::sync::OnceLock;

use candle_core::{CpuStorage, DType, Device, Result, Shape, Storage, Tensor};

/// Which implementation the layers use for convolutions and norms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelPath {
    /// Our CPU kernels where they apply (the default).
    Fast,
    /// Plain candle ops everywhere: the reference.
    Candle,
}

impl KernelPath {
    /// Both paths, fast first.
    pub const ALL: [Self; 2] = [Self::Fast, Self::Candle];

    /// `fast` or `candle`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "fast" => Some(Self::Fast),
            "candle" => Some(Self::Candle),
            _ => None,
        }
    }

    /// The name [`Self::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Candle => "candle",
        }
    }
}

/// Environment variable choosing the process-wide default path (`fast` or `candle`).
pub const KERNELS_ENV: &str = "DREAMYARD_KERNELS";

thread_local! {
    static OVERRIDE: Cell<Option<KernelPath>> = const { Cell::new(None) };
}

/// The path layers called from this thread use: the innermost [`with_kernel_path`], else
/// `DREAMYARD_KERNELS` (read once; an unknown value means `fast`), else [`KernelPath::Fast`].
pub fn kernel_path() -> KernelPath {
    static DEFAULT: OnceLock<KernelPath> = OnceLock::new();
    OVERRIDE.with(Cell::get).unwrap_or_else(|| {
        *DEFAULT.get_or_init(|| {
            std::env::var(KERNELS_ENV)
                .ok()
                .and_then(|s| KernelPath::parse(s.trim()))
                .unwrap_or(KernelPath::Fast)
        })
    })
}

/// Runs `f` with layers on this thread using `path` (restored afterwards, also on panic).
pub fn with_kernel_path<R>(path: KernelPath, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<KernelPath>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OVERRIDE.with(|o| o.replace(Some(path))));
    f()
}

/// Whether the fast kernels may run on `tensors`: fast path selected, all f32 on the CPU, and
/// none part of an autograd graph (our kernels have no backward).
pub(crate) fn use_fast(tensors: &[&Tensor]) -> bool {
    kernel_path() == KernelPath::Fast
        && tensors
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == DType::F32 && !t.track_op())
}

/// Runs `f` on the f32 data of `t` in row-major (contiguous) order.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(data)) = &*storage else {
        candle_core::bail!(
            "fast kernel: expected an f32 CPU tensor, got {:?}",
            t.dtype()
        );
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("fast kernel: tensor not contiguous after contiguous()");
    };
    f(&data[start..end])
}

/// A new CPU tensor of `shape` holding `data`.
pub(crate) fn cpu_tensor(data: Vec<f32>, shape: impl Into<Shape>) -> Result<Tensor> {
    Tensor::from_vec(data, shape, &Device::Cpu)
}

/// Copies the f32 data of `t` out (for small tensors: weights at packing time, conditioning).
pub(crate) fn to_f32_vec(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

/// Number of threads the kernels split work over (rayon's pool: `RAYON_NUM_THREADS`, else one
/// per CPU).
pub fn num_threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// `dst[m x n] (+)= lhs[m x k] * rhs[k x n]`, all row-major with the given row strides
/// (column stride 1), single-threaded (callers parallelise over independent blocks).
///
/// Panics if a slice is too short for its shape and stride: that is a bug in the caller.
#[allow(
    clippy::too_many_arguments,
    reason = "a GEMM call is these nine numbers; a struct would only rename them"
)]
pub(crate) fn sgemm(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: &[f32],
    lhs_rs: usize,
    rhs: &[f32],
    rhs_rs: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let need = |rows: usize, cols: usize, rs: usize| (rows - 1) * rs + cols;
    assert!(
        dst.len() >= need(m, n, dst_rs) && dst_rs >= n,
        "sgemm: dst too short"
    );
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_rs).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    assert!(
        lhs.len() >= need(m, k, lhs_rs) && lhs_rs >= k,
        "sgemm: lhs too short"
    );
    assert!(
        rhs.len() >= need(k, n, rhs_rs) && rhs_rs >= n,
        "sgemm: rhs too short"
    );
    // SAFETY: the asserts above guarantee that every element the GEMM touches, `(i, j)` at
    // `i * rs + j` with `i` < rows and `j` < cols, lies inside its slice; `dst` is borrowed
    // mutably, so it cannot alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            1,
            lhs_rs as isize,
            rhs.as_ptr(),
            1,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// An output buffer that parallel workers write disjoint parts of.
///
/// Used where the parts are not contiguous (a row range of every channel plane), so the buffer
/// cannot be split with `chunks_mut`.
pub(crate) struct SharedOut {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: `SharedOut` only hands out sub-slices through `slice_mut`, whose contract makes the
// callers' ranges disjoint; sending the pointer to another thread is then like sending the
// disjoint `&mut` slices themselves.
unsafe impl Send for SharedOut {}
// SAFETY: as for `Send`: shared access only ever produces disjoint mutable sub-slices.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    pub(crate) fn new(buf: &mut [f32]) -> Self {
        Self {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
        }
    }

    /// The sub-slice `start..start + len`.
    ///
    /// # Safety
    /// No two live slices obtained from the same `SharedOut` may overlap, and the buffer it was
    /// made from must outlive them (and not be used otherwise meanwhile).
    #[allow(
        clippy::mut_from_ref,
        reason = "the caller guarantees disjointness; that is this type's purpose"
    )]
    pub(crate) unsafe fn slice_mut(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(start + len <= self.len, "SharedOut: range out of bounds");
        // SAFETY: in bounds (checked above); disjointness and lifetime are the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

/// Defines `$name` as a dispatcher to `$imp` compiled twice: for the baseline target and with
/// AVX2 + FMA, picked at run time on x86-64. The kernels are plain loops the compiler
/// vectorises; the wider registers roughly double their speed.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident = $imp:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $imp($($arg),*)
                }
                if $crate::kernels::has_avx2() {
                    // SAFETY: `avx2` only differs from `$imp` by its target features, which
                    // the CPU was just checked to support.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $imp($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// Whether the CPU has AVX2 and FMA (cached).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}
