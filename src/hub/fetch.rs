//! Downloading a hub file into the Hugging Face cache, through the `hf-hub` crate's blocking API.
//!
//! The cache is the one Python's `huggingface_hub` uses (`HF_HOME/hub/models--OWNER--NAME/` with
//! `blobs/`, `snapshots/COMMIT/` and `refs/REVISION`), so a file either downloaded is found by the
//! other. A file already in the cache is used without touching the network.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};
use indicatif::{ProgressBar, ProgressDrawTarget};

use super::source::HubName;
use crate::{Error, Result};

/// The hub's address when `HF_ENDPOINT` names none.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where downloads come from and go, as the Hugging Face tools read it from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubSettings {
    /// `HF_ENDPOINT`, without a trailing `/`.
    pub endpoint: String,
    /// The hub cache folder: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
    /// `XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
    pub cache_dir: PathBuf,
    /// `HF_TOKEN`, else the token file that `huggingface-cli login` wrote beside the cache
    /// (hf-hub reads that one itself); only gated or private repositories need one.
    pub token: Option<String>,
    /// `HF_HUB_OFFLINE=1`: the cache only, never the network.
    pub offline: bool,
}

impl HubSettings {
    pub fn from_env() -> Result<HubSettings> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let cache_dir = if let Some(dir) = var("HF_HUB_CACHE") {
            PathBuf::from(dir)
        } else if let Some(home) = var("HF_HOME") {
            Path::new(&home).join("hub")
        } else if let Some(xdg) = var("XDG_CACHE_HOME") {
            Path::new(&xdg).join("huggingface").join("hub")
        } else if let Some(home) = var("HOME") {
            Path::new(&home)
                .join(".cache")
                .join("huggingface")
                .join("hub")
        } else {
            return Err(Error::config(
                "no Hugging Face cache folder: set HF_HOME (or HOME) to download pretrained \
                 weights by name",
            ));
        };
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
        });
        Ok(HubSettings {
            endpoint: var("HF_ENDPOINT")
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
                .trim_end_matches('/')
                .to_string(),
            cache_dir,
            token: var("HF_TOKEN"),
            offline,
        })
    }
}

/// A hub file on this machine.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The file in the cache's snapshot folder (a link into `blobs/`).
    pub path: PathBuf,
    /// Where it was (or would have been) downloaded from.
    pub url: String,
    /// Found in the cache: no request was made.
    pub cached: bool,
}

fn repo(name: &HubName) -> Repo {
    Repo::with_revision(
        name.repo.clone(),
        RepoType::Model,
        name.revision().to_string(),
    )
}

/// The download address of `name` (the revision percent-encoded as the hub wants it).
pub fn url(name: &HubName, settings: &HubSettings) -> String {
    format!(
        "{}/{}/resolve/{}/{}",
        settings.endpoint,
        name.repo,
        repo(name).url_revision(),
        name.file()
    )
}

/// The cached copy of `name`, if there is one: through `refs/REVISION` as hf-hub and
/// huggingface_hub record a branch or tag, or a snapshot folder named by a commit hash (which
/// huggingface_hub writes without a ref).
pub fn cached(name: &HubName, settings: &HubSettings) -> Option<PathBuf> {
    let cache = Cache::new(settings.cache_dir.clone());
    if let Some(p) = cache.repo(repo(name)).get(name.file()) {
        return Some(p);
    }
    let rev = name.revision();
    let is_commit = rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit());
    let snapshot = cache.repo(repo(name)).pointer_path(rev).join(name.file());
    (is_commit && snapshot.exists()).then_some(snapshot)
}

/// The local file of `name`: the cached copy, or a download into the cache (with a progress bar
/// on stderr when `progress` and stderr is a terminal).
pub fn fetch(name: &HubName, settings: &HubSettings, progress: bool) -> Result<Fetched> {
    let url = url(name, settings);
    if let Some(path) = cached(name, settings) {
        return Ok(Fetched {
            path,
            url,
            cached: true,
        });
    }
    if settings.offline {
        return Err(unavailable(
            name,
            &url,
            settings,
            "HF_HUB_OFFLINE is set and the file is not in the cache",
        ));
    }
    let mut builder = ApiBuilder::from_cache(Cache::new(settings.cache_dir.clone()))
        .with_endpoint(settings.endpoint.clone())
        .with_progress(false);
    if settings.token.is_some() {
        builder = builder.with_token(settings.token.clone());
    }
    let api = builder
        .build()
        .map_err(|e| Error::Msg(format!("cannot set up the hub client: {e}")))?;
    let bar = DownloadBar::new(progress);
    let path = api
        .repo(repo(name))
        .download_with_progress(name.file(), bar)
        .map_err(|e| unavailable(name, &url, settings, &reason(&e)))?;
    Ok(Fetched {
        path,
        url,
        cached: false,
    })
}

/// What went wrong, in words a user can act on.
fn reason(e: &ApiError) -> String {
    match e {
        ApiError::RequestError(inner) => match inner.as_ref() {
            // The hub answers 401 for repositories that do not exist (or are private or gated).
            ureq::Error::StatusCode(code @ (401 | 403 | 404)) => format!(
                "not found on the hub (HTTP {code}): check the repository and file name; a \
                 private or gated repository needs HF_TOKEN"
            ),
            ureq::Error::StatusCode(code) => format!("the hub answered HTTP {code}"),
            other => format!("no connection ({other})"),
        },
        other => other.to_string(),
    }
}

/// The error for a hub file that could not be had, naming the address and the way around it.
fn unavailable(name: &HubName, url: &str, settings: &HubSettings, why: &str) -> Error {
    let file = Path::new(name.file())
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.file().to_string());
    Error::Msg(format!(
        "pretrained weights `{name}`: cannot download {url}: {why}. The cache ({}) has no copy. \
         On a machine without network access, download that file elsewhere and pass its path \
         instead: `--pretrained /path/to/{file}` or `init.pretrained = \"/path/to/{file}\"` \
         (or copy a Hugging Face cache that holds it and point HF_HOME at it)",
        settings.cache_dir.display()
    ))
}

/// hf-hub's progress callbacks drawn with our indicatif style.
struct DownloadBar {
    bar: ProgressBar,
}

impl DownloadBar {
    fn new(show: bool) -> Self {
        let target = if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        bar.set_style(crate::progress::style(
            "download {msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        ));
        DownloadBar { bar }
    }
}

impl hf_hub::api::Progress for DownloadBar {
    fn init(&mut self, size: usize, filename: &str) {
        self.bar.set_length(size as u64);
        self.bar.set_position(0);
        self.bar.set_message(filename.to_string());
    }

    fn update(&mut self, size: usize) {
        self.bar.inc(size as u64);
    }

    fn finish(&mut self) {
        self.bar.finish_and_clear();
    }
}
