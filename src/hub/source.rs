//! Where pretrained weights come from: a local file or a Hugging Face hub name, told apart once
//! when the text is read (config key `init.pretrained`, option `--pretrained`).
//!
//! The rule, in order:
//! 1. empty: no pretrained weights (random initialisation);
//! 2. a path that exists (file or folder, relative to the working directory) is that path;
//! 3. text that starts like a path (`/`, `.`, `~`) or holds a `\` is a path, even when missing
//!    (the load then fails naming it);
//! 4. `OWNER/NAME:FILE`, `OWNER/NAME@REVISION` (or both) with a valid hub repository id is a hub
//!    name;
//! 5. a plain `OWNER/NAME` is a hub name unless NAME ends in a weights extension (`.pth`, `.pt`,
//!    `.bin`, `.safetensors`, `.ckpt`: `weights/resnet18.pth` is a missing file, not a repo);
//! 6. anything else is a path.
//!
//! So `timm/resnet18.tv_in1k` names the hub repository unless a folder of that name exists here
//! (write `./timm/resnet18.tv_in1k` for the folder, which rule 3 keeps a path either way).

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The file a hub name means when it names none: what timm (and most safetensors repos) publish.
pub const DEFAULT_FILE: &str = "model.safetensors";

/// The revision a hub name means when it names none (the hub's default branch).
pub const DEFAULT_REVISION: &str = "main";

/// File endings that make a name a local path (rule 3): the formats `read_weights` reads.
const WEIGHTS_EXTENSIONS: [&str; 5] = [".pth", ".pt", ".bin", ".safetensors", ".ckpt"];

/// A hub repository whose weights are known to fit one of our architectures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownRepo {
    pub repo: &'static str,
    /// The `model.arch` names (see `models::Arch`) whose encoder takes these weights.
    pub archs: &'static [&'static str],
    pub what: &'static str,
}

/// The repositories the README lists; each holds [`DEFAULT_FILE`]. Other repositories work too
/// when their tensor names are ones `models::pretrained` maps.
pub const KNOWN_REPOS: [KnownRepo; 4] = [
    KnownRepo {
        repo: "timm/resnet18.tv_in1k",
        archs: &["unet-resnet18"],
        what: "ResNet-18, torchvision's ImageNet-1k weights, the write-up's start",
    },
    KnownRepo {
        repo: "timm/resnet18.a1_in1k",
        archs: &["unet-resnet18"],
        what: "ResNet-18, ImageNet-1k, timm's A1 recipe from ResNet strikes back",
    },
    KnownRepo {
        repo: "timm/hrnet_w18.ms_aug_in1k",
        archs: &["hrnet18"],
        what: "HRNet-W18, ImageNet-1k, Microsoft's weights trained with augmentation",
    },
    KnownRepo {
        repo: "timm/hrnet_w18.ms_in1k",
        archs: &["hrnet18"],
        what: "HRNet-W18, ImageNet-1k, Microsoft's weights",
    },
];

/// A file in a hub repository: `OWNER/NAME[:FILE][@REVISION]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubName {
    /// `owner/name`.
    pub repo: String,
    /// The file inside the repository; `None`: [`DEFAULT_FILE`].
    pub file: Option<String>,
    /// A branch, tag or commit; `None`: [`DEFAULT_REVISION`].
    pub revision: Option<String>,
}

impl HubName {
    pub fn file(&self) -> &str {
        self.file.as_deref().unwrap_or(DEFAULT_FILE)
    }

    pub fn revision(&self) -> &str {
        self.revision.as_deref().unwrap_or(DEFAULT_REVISION)
    }

    /// The entry of [`KNOWN_REPOS`] for this repository, if it is one.
    pub fn known(&self) -> Option<&'static KnownRepo> {
        KNOWN_REPOS.iter().find(|k| k.repo == self.repo)
    }

    /// `None` when `text` does not have the form of a hub name (rule 4); an error when it has a
    /// valid repository id followed by an empty `:FILE` or `@REVISION`.
    fn parse(text: &str) -> Result<Option<HubName>> {
        let cut = text.find([':', '@']).unwrap_or(text.len());
        let (repo, mut rest) = text.split_at(cut);
        if !is_repo_id(repo) {
            return Ok(None);
        }
        let (mut file, mut revision) = (None, None);
        while let Some(mark) = rest.chars().next() {
            let body = &rest[1..];
            // A file runs to the next `@`, a revision to the next `:`.
            let end = body.find(if mark == ':' { '@' } else { ':' });
            let (value, tail) = body.split_at(end.unwrap_or(body.len()));
            let slot = if mark == ':' {
                &mut file
            } else {
                &mut revision
            };
            let what = if mark == ':' { "file" } else { "revision" };
            if value.is_empty() || slot.is_some() {
                return Err(Error::config(format!(
                    "pretrained weights `{text}`: expected OWNER/NAME[:FILE][@REVISION] with one \
                     non-empty {what}"
                )));
            }
            *slot = Some(value.to_string());
            rest = tail;
        }
        Ok(Some(HubName {
            repo: repo.to_string(),
            file,
            revision,
        }))
    }
}

impl std::fmt::Display for HubName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.repo)?;
        if let Some(file) = &self.file {
            write!(f, ":{file}")?;
        }
        if let Some(rev) = &self.revision {
            write!(f, "@{rev}")?;
        }
        Ok(())
    }
}

/// The hub's rule for repository ids: `owner/name`, each of ASCII letters, digits, `-`, `_` and
/// `.`, neither starting nor ending with `-` or `.`, without `--` or `..`, 96 characters at most.
fn is_repo_id(s: &str) -> bool {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !p.starts_with(['-', '.'])
            && !p.ends_with(['-', '.'])
            && !p.contains("--")
            && !p.contains("..")
    };
    match s.split_once('/') {
        Some((owner, name)) => s.len() <= 96 && part_ok(owner) && part_ok(name),
        None => false,
    }
}

/// Rule 3: text that can only be meant as a path.
fn starts_like_path(s: &str) -> bool {
    s.starts_with(['/', '.', '~']) || s.contains('\\')
}

/// Rule 5: a repository name that is a weights file's name.
fn has_weights_extension(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    WEIGHTS_EXTENSIONS.iter().any(|e| lower.ends_with(e))
}

/// Where a model's pretrained weights come from (see the module docs for how text is read).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum WeightsSource {
    /// Random initialisation.
    #[default]
    None,
    /// A `.pth` / `.safetensors` file on this machine.
    Local(PathBuf),
    /// A file in a Hugging Face hub repository, downloaded into the Hugging Face cache.
    Hub(HubName),
}

impl WeightsSource {
    pub fn is_none(&self) -> bool {
        matches!(self, WeightsSource::None)
    }

    /// Makes a local path absolute when it exists, so that a run's config.toml works from any
    /// directory (hub names and missing paths stay as written).
    pub fn absolutize(&mut self) {
        if let WeightsSource::Local(p) = self {
            if let Ok(abs) = std::fs::canonicalize(&*p) {
                *p = abs;
            }
        }
    }
}

impl std::str::FromStr for WeightsSource {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let text = s.trim();
        if text.is_empty() {
            return Ok(WeightsSource::None);
        }
        let local = || Ok(WeightsSource::Local(PathBuf::from(text)));
        if Path::new(text).exists() || starts_like_path(text) {
            return local();
        }
        match HubName::parse(text)? {
            Some(name) if name.file.is_some() || name.revision.is_some() => {
                Ok(WeightsSource::Hub(name))
            }
            Some(name) if !has_weights_extension(&name.repo) => Ok(WeightsSource::Hub(name)),
            _ => local(),
        }
    }
}

impl std::fmt::Display for WeightsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WeightsSource::None => Ok(()),
            WeightsSource::Local(p) => write!(f, "{}", p.display()),
            WeightsSource::Hub(name) => write!(f, "{name}"),
        }
    }
}

/// Written as the text it was read from (hub names in their canonical form, paths as paths).
impl serde::Serialize for WeightsSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for WeightsSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
