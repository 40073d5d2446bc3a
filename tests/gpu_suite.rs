//! The GPU-relevant tests in one executable, so that a GPU machine without a Rust toolchain can
//! run them from a carried binary (`benches/gpu-build.sh` builds it, `benches/gpu-check.sh` runs
//! it with `HMREG_TEST_DEVICE=cuda`): device parity against the CPU kernels, the tiny training
//! run, resume, mixed precision and data-parallel training. Each file stays its own test target
//! for `cargo test`; this one is built only with the `cuda` feature (Cargo.toml's
//! `required-features`), so the CPU suite does not run them twice.

#[path = "device_parity.rs"]
mod device_parity;
#[path = "train_parallel.rs"]
mod train_parallel;
#[path = "train_precision.rs"]
mod train_precision;
#[path = "train_resume.rs"]
mod train_resume;
#[path = "train_run.rs"]
mod train_run;
