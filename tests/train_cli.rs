//! The `hmreg train` and `hmreg lr-find` command lines: overrides, JSON output, exit codes.

mod common;
use common::hmreg;

use std::path::Path;

use hmreg::run::TrainConfig;

fn write_tiny(dir: &Path) -> std::path::PathBuf {
    let mut c = common::tiny_config(&dir.join("data"), 5, 1);
    c.epochs = 3;
    c.lr_find.num_it = 12;
    let path = dir.join("tiny.toml");
    std::fs::write(&path, c.to_toml().unwrap()).unwrap();
    path
}

#[test]
fn train_json_mode_prints_one_line_per_epoch_and_overrides_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_tiny(tmp.path());
    // A root named with --data must exist (it is never generated): write the config's set first.
    let synth = TrainConfig::load(&cfg).unwrap().data.synth;
    hmreg::data::synthesis::generate::generate(&tmp.path().join("data"), &synth).unwrap();
    let run = tmp.path().join("run");
    let out = hmreg()
        .args(["train", "--config"])
        .arg(&cfg)
        .args([
            "--epochs", "2", "--lr", "0.005", "--seed", "8", "--json", "--out",
        ])
        .arg(&run)
        // A data root relative to the working directory, saved as an absolute path so that the
        // run's config works from anywhere.
        .args(["--data", "data"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0]["epoch"], 1);
    assert_eq!(lines[1]["epoch"], 2);
    assert_eq!(lines[2]["summary"]["epochs_done"], 2);
    let saved = TrainConfig::load(&run.join("config.toml")).unwrap();
    assert_eq!((saved.epochs, saved.seed, saved.schedule.lr), (2, 8, 0.005));
    assert_eq!(
        saved.data.root,
        tmp.path().join("data").canonicalize().unwrap()
    );
    // A finished run resumes to "done", also when its saved data root is relative (as runs
    // written before paths were made absolute have it).
    let saved_path = run.join("config.toml");
    let text = std::fs::read_to_string(&saved_path).unwrap();
    let abs = format!("{:?}", saved.data.root.display().to_string());
    assert!(text.contains(&abs), "{abs} not in {text}");
    std::fs::write(&saved_path, text.replace(&abs, "\"data\"")).unwrap();
    let out = hmreg()
        .args(["train", "--resume", "--quiet", "--out"])
        .arg(&run)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn usage_and_input_errors_have_their_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    // --resume without the run to resume: usage.
    let out = hmreg().args(["train", "--resume"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--out"));
    // Unknown architecture: usage.
    let cfg = write_tiny(tmp.path());
    let out = hmreg()
        .args(["train", "--quiet", "--arch", "vgg16", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("vgg16"));
    // A config file with an unknown key: a problem in the input, named with its line.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "epochs = 2\nlearning_rate = 3\n").unwrap();
    let out = hmreg()
        .args(["train", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:2:") && err.contains("learning_rate"),
        "{err}"
    );
    // A dataset root without the splits: a problem in the input, naming the folder.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = hmreg()
        .args(["train", "--quiet", "--config"])
        .arg(&cfg)
        .arg("--data")
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("train"));
}

#[test]
fn lr_find_writes_the_plot_and_prints_suggestions() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_tiny(tmp.path());
    let png = tmp.path().join("lr.png");
    let out = hmreg()
        .args(["lr-find", "--json", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&png)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["iterations"].as_u64().unwrap() >= 6);
    assert!(v["suggestions"].get("valley").is_some());
    let img = image::open(&png).unwrap();
    assert!(img.width() > 100);
    let curve: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("lr.json")).unwrap())
            .unwrap();
    let lrs = curve["lrs"].as_array().unwrap();
    assert_eq!(lrs[0].as_f64().unwrap(), 1e-7);
}

#[test]
fn a_data_root_named_on_the_command_line_is_never_generated() {
    // Without --config the embedded quick start would generate its synthetic set at data.root;
    // a --data path must instead exist, and a mistyped one is an error naming it.
    let tmp = tempfile::tempdir().unwrap();
    let typo = tmp.path().join("datasets").join("synht");
    for cmd in [
        vec!["train", "--quiet"],
        vec!["lr-find", "--quiet", "--config"],
    ] {
        let mut c = hmreg();
        c.args(&cmd);
        if cmd[0] == "lr-find" {
            c.arg(write_tiny(tmp.path()));
        }
        let out = c
            .arg("--data")
            .arg(&typo)
            .arg("--out")
            .arg(tmp.path().join("out"))
            .current_dir(tmp.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}: {err}");
        assert!(
            err.contains(&typo.display().to_string()) && err.contains("does not exist"),
            "{cmd:?}: {err}"
        );
        assert!(!typo.exists(), "{cmd:?} created {}", typo.display());
        assert!(!tmp.path().join("datasets").exists(), "{cmd:?}");
        assert!(!tmp.path().join("out").exists(), "{cmd:?}");
    }
}

#[test]
fn names_are_case_insensitive_and_bad_ones_are_clap_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_tiny(tmp.path());
    let run = tmp.path().join("run");
    let out = hmreg()
        .args(["train", "--json", "--epochs", "1", "--arch", "HRNet18"])
        .args(["--device", "CPU", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = TrainConfig::load(&run.join("config.toml")).unwrap();
    assert_eq!(saved.model.arch, hmreg::models::Arch::Hrnet18);
    assert_eq!(saved.device, hmreg::device::DeviceSpec::Cpu);
    // The same names in a config file.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("arch = \"unet-resnet18\"", "arch = \"UNet-ResNet18\"");
    assert!(text.contains("UNet-ResNet18"), "{text}");
    assert_eq!(
        TrainConfig::parse(&text, Path::new("x.toml"))
            .unwrap()
            .model
            .arch,
        hmreg::models::Arch::UnetResnet18
    );
    let bad = text.replace("arch = \"UNet-ResNet18\"", "arch = \"vgg16\"");
    let err = TrainConfig::parse(&bad, Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("x.toml:") && err.contains("vgg16"), "{err}");
    // Bad values are refused by clap before anything runs (exit 2), naming the choices.
    for (args, word) in [
        (vec!["train", "--device", "gpu"], "gpu"),
        (vec!["train", "--points", "1,x"], "1,x"),
        (
            vec!["lr-find", "--config", "c.toml", "--arch", "vgg16"],
            "vgg16",
        ),
        (vec!["eval", "--run", "r", "--decoder", "median"], "median"),
        (
            vec!["predict", "--run", "r", "--bbox", "1,2,3", "a.png"],
            "1,2,3",
        ),
    ] {
        let out = hmreg()
            .args(&args)
            .current_dir(tmp.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(word) && err.contains("invalid value"),
            "{args:?}: {err}"
        );
    }
    // Half precision is CUDA only: a clear refusal on the CPU, before any data is touched.
    let out = hmreg()
        .args([
            "train",
            "--precision",
            "bf16",
            "--device",
            "cpu",
            "--out",
            "r",
        ])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("bf16") && err.contains("CUDA"), "{err}");
    assert!(!tmp.path().join("r/checkpoints").exists());
    let help = hmreg().args(["eval", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("argmax") && help.contains("softargmax"),
        "{help}"
    );
}
