//! The tiny training run shared by the training, evaluation and command-line tests.

// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use hmreg::codec::TargetEncoder;
use hmreg::data::SynthConfig;
use hmreg::learn::schedule::ScheduleKind;
use hmreg::models::Arch;
use hmreg::run::TrainConfig;
use hmreg::train::progress::OutputMode;
use hmreg::train::RunOptions;

/// UNet-ResNet18 at width 1/8 on 64x64 synthetic faces (8 training, 4 validation, 5 of the 68
/// points), two epochs of one-cycle at 1e-2: seconds per epoch on two cores. On the test suite's
/// device (`HMREG_TEST_DEVICE`). `seed` drives
/// training, `data_seed` the generated faces (written under `root` on first use).
pub fn tiny_config(root: &Path, seed: u64, data_seed: u64) -> TrainConfig {
    let mut c = TrainConfig {
        seed,
        device: hmreg::device::test_device_spec(),
        epochs: 2,
        batch_size: 4,
        ..Default::default()
    };
    c.data.root = root.to_path_buf();
    c.data.points = "8,30,36,45,57".parse().unwrap();
    c.data.train_limit = 0;
    c.data.generate_if_missing = true;
    c.data.synth = SynthConfig {
        train: 8,
        val: 4,
        test: 0,
        size: 64,
        seed: data_seed,
    };
    c.model.arch = Arch::UnetResnet18;
    c.model.width = 0.125;
    c.pipeline.input_size = 64;
    c.pipeline.item_size = 0;
    c.target.encoder = TargetEncoder::Gaussian {
        sigma: 2.0,
        subpixel: false,
    };
    c.schedule.kind = ScheduleKind::OneCycle;
    c.schedule.lr = 1e-2;
    c
}

/// Run options for `run_dir` without progress output.
pub fn quiet(run_dir: &Path) -> RunOptions {
    RunOptions {
        run_dir: run_dir.to_path_buf(),
        output: OutputMode::Quiet,
        ..Default::default()
    }
}

/// Runs `f` once in each of rayon pools of 1, 2 and 7 threads, with buffer poisoning on, so
/// every parallel split of the op kernels runs and a missed write shows up as NaN.
pub fn for_each_pool(f: impl Fn() + Sync) {
    hmreg::ops::buffer::set_poison(true);
    for threads in [1, 2, 7] {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(&f);
    }
}

/// Runs `f` on the test suite's device along the path a GPU takes: on a GPU as is; on the CPU
/// with the portable ops forced (Candle tensor ops instead of the CPU kernels), so that the
/// arithmetic a GPU will run is tested here too.
pub fn on_device_path<R>(f: impl FnOnce(&candle_core::Device) -> R) -> R {
    let dev = hmreg::device::test_device();
    if dev.is_cpu() {
        hmreg::ops::with_portable_ops(|| f(&dev))
    } else {
        f(&dev)
    }
}

/// The `hmreg` binary of this build, as a command to add arguments to; `HMREG_BIN` names another
/// (for a test executable carried to a machine where the build's path does not exist).
pub fn hmreg() -> Command {
    Command::new(
        std::env::var_os("HMREG_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_hmreg").into()),
    )
}
