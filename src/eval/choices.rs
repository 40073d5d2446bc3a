//! What an evaluation decides beyond the run's config: the decoder (any one, chosen at evaluation
//! time) and the mirror permutation of the flip test.

use std::path::Path;

use crate::codec::{Codec, Decoder};
use crate::data::sources::dataset::Sample;
use crate::run::ResolvedRun;
use crate::{Error, Result};

/// The run's codec decoding with `--decoder` and `--k` (alone: top-k), defaulting to the run's
/// validation decoder. `dark` without a parameter takes the Gaussian target's sigma (the codec
/// resolves it), which is what DARK's smoothing should match.
pub fn choose_codec(
    decoder: Option<&Decoder>,
    k: Option<usize>,
    cfg: &ResolvedRun,
) -> Result<Codec> {
    let mut dec = match decoder {
        // `--k` alone asks for the top-k decoder.
        None if k.is_some() => Decoder::TopK { k: k.unwrap_or(9) },
        None => cfg.metrics.decoder.clone(),
        Some(d) => d.clone(),
    };
    if let Some(k) = k {
        match &mut dec {
            Decoder::TopK { k: kk } => *kk = k,
            other => {
                return Err(Error::config(format!(
                    "--k applies to the top-k decoder, not to `{other}`"
                )))
            }
        }
    }
    cfg.codec_with(dec)
}

/// The number of points in the run's landmark files: from a file of the run's data when there is
/// one, else from the model when the selection is `all`.
pub fn points_in_files(
    cfg: &ResolvedRun,
    data_root: &Path,
    samples: Option<&[Sample]>,
) -> Result<usize> {
    if let Some(s) = samples.and_then(|s| s.first()) {
        return Ok(s.file_points);
    }
    if cfg.data.points == crate::data::PointSelection::All {
        return Ok(cfg.model.points);
    }
    for split in [&cfg.data.val_split, &cfg.data.train_split] {
        if let Ok(listing) = crate::data::sources::dataset::list_split(data_root, split) {
            if let Some(f) = listing.landmarks.values().flatten().next() {
                return Ok(crate::data::read_landmarks(f)?.len());
            }
        }
    }
    if let Some(p) = &cfg.pipeline.flip.permutation {
        return Ok(p.len());
    }
    Err(Error::config(format!(
        "flip test: cannot tell how many points the landmark files have (no data under {}); \
         set pipeline.flip.permutation in the config",
        data_root.display()
    )))
}

/// The mirror permutation of the model's points: the point set's flip permutation restricted to
/// the selected points (`samples`: the data being evaluated, to count the points in its files).
pub fn flip_permutation(cfg: &ResolvedRun, samples: Option<&[Sample]>) -> Result<Vec<usize>> {
    let n = points_in_files(cfg, &cfg.data.root, samples)?;
    crate::data::transforms::flip::flip_permutation(
        n,
        &cfg.data.points,
        cfg.pipeline.flip.permutation.as_deref(),
    )
}
