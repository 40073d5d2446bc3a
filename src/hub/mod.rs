//! Pretrained weights by name: a local file or a Hugging Face hub repository
//! (`timm/resnet18.tv_in1k`), told apart once when a config or command line is read
//! ([`WeightsSource`]); hub files are downloaded into the standard Hugging Face cache on first
//! use and read from it afterwards ([`fetch()`]). Reading a config never downloads: only
//! training and lr-find fetch.

pub mod fetch;
pub mod source;

pub use fetch::{fetch, Fetched, HubSettings};
pub use source::{HubName, KnownRepo, WeightsSource, DEFAULT_FILE, KNOWN_REPOS};

use std::path::PathBuf;

use crate::Result;

/// The local file of `source` (`None` for random initialisation): a local path as it is, a hub
/// name fetched with the environment's [`HubSettings`]. `note` hears where a hub file came from.
pub fn resolve(
    source: &WeightsSource,
    progress: bool,
    note: &dyn Fn(&str),
) -> Result<Option<PathBuf>> {
    match source {
        WeightsSource::None => Ok(None),
        WeightsSource::Local(p) => Ok(Some(p.clone())),
        WeightsSource::Hub(name) => {
            let settings = HubSettings::from_env()?;
            let got = fetch(name, &settings, progress)?;
            note(&if got.cached {
                format!("pretrained: {name} from the cache ({})", got.path.display())
            } else {
                format!(
                    "pretrained: {name} downloaded from {} to {}",
                    got.url,
                    got.path.display()
                )
            });
            Ok(Some(got.path))
        }
    }
}
