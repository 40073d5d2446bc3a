//! Pretrained weights by hub name, without a network: a loopback HTTP server in the test answers
//! what hf-hub asks the Hugging Face hub (the `Range: bytes=0-0` probe of `/OWNER/NAME/resolve/
//! REVISION/FILE`, answered as the hub answers for a large file: a redirect carrying
//! `x-repo-commit` and `x-linked-etag` to a storage address that gives `content-range`, then the
//! body from there), serving a small safetensors file with timm's HRNet-W18 names, its
//! classification parts and `num_batches_tracked` counters included.

mod common;
use common::hmreg;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use candle_core::{DType, Tensor};
use hmreg::hub::{fetch, HubName, HubSettings, WeightsSource};
use hmreg::models::{build, load_pretrained_with, Arch, LoadOptions, ModelConfig, ParamGroup};
use hmreg::models::{HeadKind, ParamStore};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const REPO: &str = "timm/hrnet_w18.tiny_test";

/// The stand-in hub: files by `OWNER/NAME/FILE`. It stops by itself after a minute or 100
/// connections, whichever comes first.
struct FakeHub {
    endpoint: String,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

struct Blob {
    etag: String,
    body: Vec<u8>,
}

impl FakeHub {
    fn start(files: HashMap<String, Vec<u8>>) -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let endpoint = format!("http://{addr}");
        // Each file under a content hash of its own (the etag is the blob's name in the cache).
        let files: HashMap<String, Blob> = files
            .into_iter()
            .enumerate()
            .map(|(i, (k, body))| {
                let etag = format!("{:064x}", i as u128 * 7919 + body.len() as u128);
                (k, Blob { etag, body })
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, requests, endpoint) = (stop.clone(), requests.clone(), endpoint.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut served = 0;
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline && served < 100 {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            served += 1;
                            requests.fetch_add(1, Ordering::SeqCst);
                            answer(stream, &files, &endpoint);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        FakeHub {
            endpoint,
            stop,
            requests,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Closes the port: connections are refused from now on, as with no network.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One request per connection (`Connection: close`).
fn answer(mut stream: TcpStream, files: &HashMap<String, Blob>, endpoint: &str) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16384 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let range = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("range")
            .then(|| v.trim().to_string())
    });
    let mut headers: Vec<(String, String)> = Vec::new();
    let (status, body): (&str, Vec<u8>) = if let Some(etag) = path.strip_prefix("/cdn/") {
        // Storage: the bytes, from the requested offset.
        match files.values().find(|b| b.etag == etag) {
            Some(blob) => {
                let total = blob.body.len();
                let (start, end) = parse_range(range.as_deref(), total);
                headers.push((
                    "Content-Range".into(),
                    format!("bytes {start}-{end}/{total}"),
                ));
                ("206 Partial Content", blob.body[start..=end].to_vec())
            }
            None => ("404 Not Found", b"no such blob".to_vec()),
        }
    } else {
        // The hub: `/OWNER/NAME/resolve/REVISION/FILE` answered with a redirect to storage.
        let parts: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
        let key = match parts.as_slice() {
            [owner, name, "resolve", _rev, file] => Some(format!("{owner}/{name}/{file}")),
            _ => None,
        };
        match key.and_then(|k| files.get(&k)) {
            Some(blob) => {
                headers.push(("Location".into(), format!("{endpoint}/cdn/{}", blob.etag)));
                headers.push(("x-repo-commit".into(), COMMIT.into()));
                headers.push(("x-linked-etag".into(), format!("\"{}\"", blob.etag)));
                headers.push(("x-linked-size".into(), blob.body.len().to_string()));
                ("302 Found", Vec::new())
            }
            None => {
                headers.push(("x-error-code".into(), "RepoNotFound".into()));
                ("404 Not Found", b"Repository not found".to_vec())
            }
        }
    };
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        out += &format!("{k}: {v}\r\n");
    }
    out += &format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.write_all(&body);
    let _ = stream.flush();
}

/// `bytes=A-B` or `bytes=A-` (the whole file without a header).
fn parse_range(range: Option<&str>, total: usize) -> (usize, usize) {
    let spec = range.and_then(|r| r.strip_prefix("bytes="));
    let Some((a, b)) = spec.and_then(|s| s.split_once('-')) else {
        return (0, total - 1);
    };
    let start = a.parse().unwrap_or(0);
    let end = b.parse().unwrap_or(total - 1).min(total - 1);
    (start, end)
}

/// The tiny HRNet-W18 of the command-line test's config (5 points, 64x64, width 1/16).
fn tiny_hrnet() -> ModelConfig {
    ModelConfig {
        arch: Arch::Hrnet18,
        points: 5,
        input_size: 64,
        width: 0.0625,
        heatmap_stride: 0,
        head: HeadKind::Binary,
        ..Default::default()
    }
}

fn store(cfg: &ModelConfig, seed: u64) -> ParamStore {
    let mut store = ParamStore::new(&hmreg::device::test_device(), seed);
    build(cfg, &mut store).unwrap();
    store
}

/// timm's classification parts of HRNet-W18 (small shapes): not ours, reported as unused.
const CLASSIFICATION: [(&str, &[usize]); 8] = [
    ("incre_modules.0.0.conv1.weight", &[4, 2, 1, 1]),
    ("incre_modules.0.0.bn1.weight", &[4]),
    ("downsamp_modules.0.0.weight", &[8, 4, 3, 3]),
    ("downsamp_modules.0.0.bias", &[8]),
    ("final_layer.0.weight", &[16, 8, 1, 1]),
    ("final_layer.1.running_var", &[16]),
    ("classifier.weight", &[10, 16]),
    ("classifier.bias", &[10]),
];

/// A timm-style HRNet-W18 checkpoint of `src`'s backbone: the backbone under the same names
/// (timm keeps the official ones), a `num_batches_tracked` per BatchNorm, the classification
/// parts. Returns the safetensors bytes and the number of BatchNorms.
fn timm_checkpoint(src: &ParamStore, dir: &Path) -> (Vec<u8>, usize) {
    let dev = hmreg::device::test_device();
    let mut map: HashMap<String, Tensor> = HashMap::new();
    let mut bns = 0;
    for p in src.params() {
        if p.group != ParamGroup::Encoder {
            continue;
        }
        if let Some(bn) = p.name.strip_suffix(".running_mean") {
            bns += 1;
            map.insert(
                format!("{bn}.num_batches_tracked"),
                Tensor::new(1234i64, &dev).unwrap(),
            );
        }
        map.insert(p.name.clone(), p.var.as_tensor().clone());
    }
    for (name, shape) in CLASSIFICATION {
        map.insert(
            name.to_string(),
            Tensor::ones(shape, DType::F32, &dev).unwrap(),
        );
    }
    let path = dir.join("timm.safetensors");
    candle_core::safetensors::save(&map, &path).unwrap();
    (std::fs::read(&path).unwrap(), bns)
}

fn settings(hub: &FakeHub, cache: &Path) -> HubSettings {
    HubSettings {
        endpoint: hub.endpoint.clone(),
        cache_dir: cache.to_path_buf(),
        token: None,
        offline: false,
    }
}

fn hub_name(text: &str) -> HubName {
    match text.parse::<WeightsSource>().unwrap() {
        WeightsSource::Hub(name) => name,
        other => panic!("{text} read as {other:?}"),
    }
}

fn values(store: &ParamStore, name: &str) -> Vec<f32> {
    let t = store.get(name).unwrap().var.as_tensor();
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn names_and_paths_are_told_apart_once() {
    let tmp = tempfile::tempdir().unwrap();
    let name = hub_name("timm/resnet18.tv_in1k");
    assert_eq!(
        (name.repo.as_str(), name.file(), name.revision()),
        ("timm/resnet18.tv_in1k", "model.safetensors", "main")
    );
    assert!(name.known().is_some());
    let full = hub_name("timm/hrnet_w18.ms_in1k:pytorch_model.bin@v1.0");
    assert_eq!(
        (full.file(), full.revision()),
        ("pytorch_model.bin", "v1.0")
    );
    assert_eq!(
        full.to_string(),
        "timm/hrnet_w18.ms_in1k:pytorch_model.bin@v1.0"
    );
    let rev_first = hub_name("owner/repo@abc:sub/dir/w.safetensors");
    assert_eq!(
        (rev_first.file(), rev_first.revision()),
        ("sub/dir/w.safetensors", "abc")
    );
    assert_eq!("".parse::<WeightsSource>().unwrap(), WeightsSource::None);
    // Paths: written like one, a weights file's name, not a repository id, or existing.
    for text in [
        "/abs/weights.pth",
        "./timm/resnet18.tv_in1k",
        "weights/resnet18.pth",
        "resnet18.safetensors",
        "a/b/c",
        "-bad/name",
    ] {
        assert_eq!(
            text.parse::<WeightsSource>().unwrap(),
            WeightsSource::Local(PathBuf::from(text)),
            "{text}"
        );
    }
    let existing = tmp.path().join("timm").join("resnet18.tv_in1k");
    std::fs::create_dir_all(&existing).unwrap();
    let text = existing.to_str().unwrap();
    assert_eq!(
        text.parse::<WeightsSource>().unwrap(),
        WeightsSource::Local(existing.clone())
    );
    for bad in [
        "timm/resnet18.tv_in1k:",
        "timm/resnet18.tv_in1k@",
        "a/b:f1@r:f2",
    ] {
        let err = bad.parse::<WeightsSource>().unwrap_err().to_string();
        assert!(err.contains(bad) && err.contains("OWNER/NAME"), "{err}");
    }
    // Written back as read, so a run's config.toml reads the same source.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Init {
        pretrained: WeightsSource,
    }
    let text = toml::to_string(&Init {
        pretrained: WeightsSource::Hub(full.clone()),
    })
    .unwrap();
    let back: Init = toml::from_str(&text).unwrap();
    assert_eq!(back.pretrained, WeightsSource::Hub(full));
}

#[test]
fn a_hub_file_is_downloaded_once_then_read_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_hrnet();
    let src = store(&cfg, 1);
    let (bytes, bns) = timm_checkpoint(&src, tmp.path());
    let mut hub = FakeHub::start(HashMap::from([(
        format!("{REPO}/model.safetensors"),
        bytes.clone(),
    )]));
    let cache = tmp.path().join("hf").join("hub");
    let settings = settings(&hub, &cache);
    let name = hub_name(REPO);

    let got = fetch(&name, &settings, false).unwrap();
    assert!(!got.cached);
    assert_eq!(
        got.url,
        format!("{}/{REPO}/resolve/main/model.safetensors", hub.endpoint)
    );
    assert_eq!(std::fs::read(&got.path).unwrap(), bytes);
    // The standard cache layout, so Python's huggingface_hub finds the file too.
    let folder = cache.join("models--timm--hrnet_w18.tiny_test");
    assert_eq!(
        got.path,
        folder
            .join("snapshots")
            .join(COMMIT)
            .join("model.safetensors")
    );
    assert_eq!(
        std::fs::read_to_string(folder.join("refs").join("main")).unwrap(),
        COMMIT
    );

    // Backbone loaded exactly; classification parts unused; the counters ignored.
    let dst = store(&cfg, 2);
    assert_ne!(values(&dst, "conv1.weight"), values(&src, "conv1.weight"));
    let opts = LoadOptions {
        groups: Some(vec![ParamGroup::Encoder]),
    };
    let report = load_pretrained_with(&dst, &got.path, &opts).unwrap();
    let encoder: Vec<&str> = src
        .params()
        .iter()
        .filter(|p| p.group == ParamGroup::Encoder)
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(report.loaded.len(), encoder.len());
    let mut unused: Vec<&str> = CLASSIFICATION.iter().map(|(n, _)| *n).collect();
    unused.sort();
    assert_eq!(report.unused, unused);
    assert_eq!(report.ignored.len(), bns);
    assert!(bns > 0);
    for n in &encoder {
        assert_eq!(values(&dst, n), values(&src, n), "{n}");
    }
    assert!(report
        .missing
        .iter()
        .all(|n| dst.get(n).unwrap().group != ParamGroup::Encoder));

    // The server gone: the cached copy, no request.
    let before = hub.requests();
    hub.stop();
    let again = fetch(&name, &settings, false).unwrap();
    assert!(again.cached);
    assert_eq!(again.path, got.path);
    assert_eq!(hub.requests(), before);
    // A commit hash as the revision finds the snapshot directly.
    let pinned = hub_name(&format!("{REPO}@{COMMIT}"));
    assert!(fetch(&pinned, &settings, false).unwrap().cached);

    // Not cached and no server: the error names the address and the way around it.
    let other = hub_name("timm/resnet18.tv_in1k");
    let err = fetch(&other, &settings, false).unwrap_err().to_string();
    let url = format!(
        "{}/timm/resnet18.tv_in1k/resolve/main/model.safetensors",
        hub.endpoint
    );
    assert!(err.contains(&url), "{err}");
    assert!(
        err.contains("--pretrained /path/to/model.safetensors"),
        "{err}"
    );
    assert!(err.contains("no connection"), "{err}");
    // Offline by the environment's choice: the cache only.
    let offline = HubSettings {
        offline: true,
        ..settings.clone()
    };
    assert!(fetch(&name, &offline, false).unwrap().cached);
    let err = fetch(&other, &offline, false).unwrap_err().to_string();
    assert!(
        err.contains("HF_HUB_OFFLINE") && err.contains(&url),
        "{err}"
    );
}

#[test]
fn a_name_the_hub_does_not_have_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(HashMap::from([(
        format!("{REPO}/model.safetensors"),
        b"not read".to_vec(),
    )]));
    let settings = settings(&hub, &tmp.path().join("hub"));
    for text in ["timm/no_such_model", &format!("{REPO}:other.safetensors")] {
        let err = fetch(&hub_name(text), &settings, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not found on the hub (HTTP 404)"), "{err}");
        assert!(err.contains(&format!("{}/", hub.endpoint)), "{err}");
        assert!(err.contains("--pretrained /path/to/"), "{err}");
    }
}

/// The tiny HRNet run's config: 1 epoch on the synthetic faces under `dir/data`.
fn write_config(dir: &Path) -> PathBuf {
    let mut c = common::tiny_config(&dir.join("data"), 3, 1);
    c.model.arch = Arch::Hrnet18;
    c.model.width = tiny_hrnet().width;
    c.epochs = 1;
    let path = dir.join("hrnet.toml");
    std::fs::write(&path, c.to_toml().unwrap()).unwrap();
    path
}

fn train(cfg: &Path, out: &Path, pretrained: &str, hub: &str, home: &Path) -> (bool, String) {
    let out = hmreg()
        .args(["train", "--config"])
        .arg(cfg)
        .args(["--pretrained", pretrained, "--out"])
        .arg(out)
        .env("HF_ENDPOINT", hub)
        .env("HF_HOME", home)
        .env("NO_PROXY", "127.0.0.1")
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_TOKEN")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn train_fetches_hub_weights_reports_the_unused_parts_and_then_runs_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path());
    let src = store(&tiny_hrnet(), 9);
    let (bytes, bns) = timm_checkpoint(&src, tmp.path());
    let n_encoder = src
        .params()
        .iter()
        .filter(|p| p.group == ParamGroup::Encoder)
        .count();
    let mut hub = FakeHub::start(HashMap::from([(
        format!("{REPO}/model.safetensors"),
        bytes,
    )]));
    let home = tmp.path().join("hf");
    let endpoint = hub.endpoint.clone();

    let (ok, err) = train(&cfg, &tmp.path().join("r1"), REPO, &endpoint, &home);
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("pretrained: {REPO} downloaded from {endpoint}/")),
        "{err}"
    );
    let want = format!(
        "pretrained: {n_encoder} encoder tensors loaded from {}; 0 encoder tensors kept their \
         initial values; 8 file tensors not used (classifier: 2, downsamp_modules: 2, \
         final_layer: 2, incre_modules: 2); {bns} num_batches_tracked ignored",
        home.join("hub/models--timm--hrnet_w18.tiny_test/snapshots")
            .join(COMMIT)
            .join("model.safetensors")
            .display()
    );
    assert!(err.contains(&want), "{err}\nwanted: {want}");
    // The run's config names the hub weights as given.
    let saved = std::fs::read_to_string(tmp.path().join("r1").join("config.toml")).unwrap();
    assert!(
        saved.contains(&format!("pretrained = \"{REPO}\"")),
        "{saved}"
    );

    // A name the hub does not have: the clear error, nothing trained.
    let (ok, err) = train(&cfg, &tmp.path().join("r2"), "timm/nope", &endpoint, &home);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "{endpoint}/timm/nope/resolve/main/model.safetensors"
        )) && err.contains("HTTP 404")
            && err.contains("--pretrained /path/to/model.safetensors"),
        "{err}"
    );
    assert!(!tmp.path().join("r2").join("checkpoints").exists());

    // No server: the cached copy trains; a name not cached fails naming its address.
    hub.stop();
    let (ok, err) = train(&cfg, &tmp.path().join("r3"), REPO, &endpoint, &home);
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("pretrained: {REPO} from the cache")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{n_encoder} encoder tensors loaded")),
        "{err}"
    );
    let (ok, err) = train(&cfg, &tmp.path().join("r4"), "timm/other", &endpoint, &home);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "{endpoint}/timm/other/resolve/main/model.safetensors"
        )) && err.contains("no connection"),
        "{err}"
    );

    // Resuming reads the checkpoint, not the pretrained weights: no server, no cache.
    std::fs::remove_dir_all(&home).unwrap();
    let out = hmreg()
        .args(["train", "--resume", "--out"])
        .arg(tmp.path().join("r1"))
        .env("HF_ENDPOINT", &endpoint)
        .env("HF_HOME", &home)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("pretrained:"), "{err}");
}
