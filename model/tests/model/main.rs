//! Integration tests of the model crate, one module per area, in one test binary: DIAMOND
//! parity, the fast kernels against candle's ops, the runtime and training.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns panic on failure by design"
)]

mod kernels;
mod parity;
mod precision;
mod runtime;
mod train;
