//! `hmreg align`: a photo series of one person aligned onto a reference face: one face per
//! photo (the largest, or `--bbox`), a least-squares similarity of its landmarks onto the
//! reference's, each photo warped into the common frame; the aligned frames, a contact sheet
//! and, when asked, an animated GIF.

use std::path::{Path, PathBuf};

use clap::Args;

use super::args::{device_parser, DecodeArgs, ModelArgs};
use crate::data::sources::image_io::{read_rgb, read_rgb_upright};
use crate::detect::DetectOptions;
use crate::device::DeviceSpec;
use crate::sequence::align::{
    contact_sheet, fit_on, frame_for_size, mean_shape, warp_photo, PointSet,
};
use crate::sequence::faces::FaceModel;
use crate::sequence::frames::{check_fps, write_gif};
use crate::sequence::similarity::Similarity;
use crate::stdout;
use crate::{BBox, Error, Result};

/// Align a photo series onto one face.
#[derive(Args, Debug)]
pub struct AlignArgs {
    /// The photos (JPEG or PNG), folders (every image inside, by name), or `-` for a list on
    /// standard input; the order given is the GIF's order.
    #[arg(required = true, value_name = "PHOTO|DIR|-")]
    pub photos: Vec<PathBuf>,
    /// Write the aligned frames (`<stem>.png`), contact-sheet.png and alignment.json here.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The face everything is aligned onto: the first photo's, the mean shape of all (in the
    /// first photo's frame), or that of another photo.
    #[arg(long, value_name = "first|mean|PHOTO", default_value = "first")]
    pub reference: String,
    /// Size of the aligned frames, `W` or `WxH`: the reference face centred, its landmarks'
    /// box half the shorter side. Default: the reference photo's size and framing.
    #[arg(long, value_name = "W[xH]", value_parser = parse_size)]
    pub size: Option<(u32, u32)>,
    /// Points the similarity is fitted on.
    #[arg(long, value_enum, default_value_t = PointSet::All)]
    pub points: PointSet,
    /// Also write the aligned frames as an animated GIF.
    #[arg(long, value_name = "FILE.gif")]
    pub gif: Option<PathBuf>,
    /// Frames per second of the GIF.
    #[arg(long, default_value_t = 5.0)]
    pub fps: f64,
    /// The face box `x,y,w,h` in every photo instead of detection (the landmark-box crop
    /// convention of `hmreg predict --bbox`).
    #[arg(long, value_name = "x,y,w,h", value_parser = crate::predict::parse_bbox, allow_hyphen_values = true)]
    pub bbox: Option<BBox>,
    /// Smallest face side to detect, in pixels (at least 20).
    #[arg(long, value_name = "PIXELS", default_value_t = DetectOptions::default().min_face)]
    pub min_face: u32,
    /// The model (default: the built-in 68-point face model).
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub decoding: DecodeArgs,
    /// Device (cuda:N: the N-th GPU).
    #[arg(long, default_value = "cpu", value_parser = device_parser())]
    pub device: DeviceSpec,
}

/// Parses `W` (a square) or `WxH`, each 8 to 8192 pixels.
pub fn parse_size(s: &str) -> Result<(u32, u32)> {
    let bad = || {
        Error::config(format!(
            "expected W or WxH in pixels (8 to 8192), got {s:?}"
        ))
    };
    let mut parts = s.split(['x', 'X']);
    let w: u32 = parts
        .next()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(bad)?;
    let h: u32 = match parts.next() {
        Some(v) => v.trim().parse().map_err(|_| bad())?,
        None => w,
    };
    if parts.next().is_some() || !(8..=8192).contains(&w) || !(8..=8192).contains(&h) {
        return Err(bad());
    }
    Ok((w, h))
}

/// One photo's transform into the common frame, as alignment.json records it.
#[derive(serde::Serialize)]
struct Aligned {
    photo: PathBuf,
    aligned: PathBuf,
    /// Photo pixels to aligned-frame pixels: `x' = a x - b y + tx`, `y' = b x + a y + ty`.
    transform: Similarity,
    scale: f64,
    rotation_deg: f64,
    /// Root-mean-square distance of the fitted points from the reference's, in output pixels.
    rms_px: f64,
}

#[derive(serde::Serialize)]
struct AlignDoc<'a> {
    reference: &'a str,
    width: u32,
    height: u32,
    points: &'static str,
    photos: &'a [Aligned],
    skipped: &'a [String],
}

/// One photo's face points and the photo's (width, height).
type PhotoFace = (Vec<[f32; 2]>, (u32, u32));

/// The points of the largest face of `path` (or of the face in `bbox`): `Ok(None)` when there
/// is no face.
fn face_points(
    model: &mut FaceModel,
    path: &Path,
    bbox: Option<BBox>,
) -> Result<Option<PhotoFace>> {
    let (img, _) = read_rgb_upright(path)?;
    let size = img.dimensions();
    let face = match bbox {
        Some(b) => model
            .points_in_boxes(&img, &[b])
            .map_err(|e| Error::file(path, e.to_string()))?
            .pop(),
        None => {
            let found = model
                .detect_and_predict(&img)
                .map_err(|e| Error::file(path, e.to_string()))?;
            found
                .into_iter()
                .max_by(|a, b| a.0.bbox.area().total_cmp(&b.0.bbox.area()))
                .map(|(_, f)| f)
        }
    };
    Ok(face.map(|f| (f.xy(), size)))
}

pub fn run(args: AlignArgs) -> Result<()> {
    let fps = check_fps(args.fps)?;
    let photos = super::predict::expand_inputs(&args.photos, false)?;
    if photos.is_empty() {
        return Err(Error::config("no photos given"));
    }
    let device = args.device.open()?;
    let loaded = super::track::load(&args.model, &device)?;
    let detect = DetectOptions {
        min_face: args.min_face,
        ..Default::default()
    };
    let mut model = super::track::face_model(&loaded, &args.decoding, &detect, &device)?;
    // Pass 1: every photo's landmarks (the pictures are read again in pass 2, so a long series
    // does not fill memory).
    let bar = crate::progress::bar(2 * photos.len() as u64, "align", true);
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for p in &photos {
        bar.inc(1);
        match face_points(&mut model, p, args.bbox) {
            Ok(Some(f)) => found.push((p.clone(), f)),
            Ok(None) => skipped.push(format!("{}: no face found", p.display())),
            Err(e) => skipped.push(e.to_string()),
        }
    }
    let idx = args.points.indices(loaded.cfg.model.points)?;
    let (ref_points, ref_size) = match args.reference.as_str() {
        "first" => found
            .first()
            .map(|(_, f)| f.clone())
            .ok_or_else(|| Error::Problems("no face found in any photo".into()))?,
        "mean" => {
            let shapes: Vec<Vec<[f32; 2]>> = found.iter().map(|(_, f)| f.0.clone()).collect();
            let first = found
                .first()
                .ok_or_else(|| Error::Problems("no face found in any photo".into()))?;
            (mean_shape(&shapes, &idx)?, first.1 .1)
        }
        other => {
            let p = Path::new(other);
            face_points(&mut model, p, args.bbox)?
                .ok_or_else(|| Error::file(p, "no face found in the reference photo"))?
        }
    };
    let (w, h) = args.size.unwrap_or(ref_size);
    let place = match args.size {
        Some((w, h)) => frame_for_size(&ref_points, &idx, w, h),
        None => Similarity::new(1.0, 0.0, 0.0, 0.0),
    };
    let target: Vec<[f32; 2]> = ref_points.iter().map(|&p| place.apply(p)).collect();
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Error::file(&args.out, format!("cannot create folder: {e}")))?;
    // Pass 2: fit, warp, write.
    let mut aligned = Vec::new();
    let mut thumbs = Vec::new();
    for (photo, (points, _)) in &found {
        bar.inc(1);
        let t = fit_on(points, &target, &idx).map_err(|e| Error::file(photo, e.to_string()))?;
        let rms = (idx
            .iter()
            .map(|&i| {
                let q = t.apply(points[i]);
                ((q[0] - target[i][0]) as f64).powi(2) + ((q[1] - target[i][1]) as f64).powi(2)
            })
            .sum::<f64>()
            / idx.len() as f64)
            .sqrt();
        let (img, _) = read_rgb_upright(photo)?;
        let out_img = warp_photo(&img, &t, w, h)?;
        let stem = photo
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "photo".into());
        let file = args.out.join(format!("{stem}.png"));
        crate::viz::save_png(&out_img, &file)?;
        thumbs.push((
            image::imageops::thumbnail(
                &out_img,
                w.min(200),
                (h as f64 * w.min(200) as f64 / w as f64) as u32,
            ),
            stem,
        ));
        aligned.push(Aligned {
            photo: photo.clone(),
            aligned: file,
            transform: t,
            scale: t.scale(),
            rotation_deg: t.angle().to_degrees(),
            rms_px: rms,
        });
    }
    bar.finish_and_clear();
    for s in &skipped {
        eprintln!("hmreg align: skipped {s}");
    }
    let sheet = args.out.join("contact-sheet.png");
    crate::viz::save_png(&contact_sheet(&thumbs), &sheet)?;
    if let Some(gif) = &args.gif {
        write_gif(gif, aligned.len(), fps, |k| read_rgb(&aligned[k].aligned))?;
    }
    let doc = AlignDoc {
        reference: &args.reference,
        width: w,
        height: h,
        points: match args.points {
            PointSet::All => "all",
            PointSet::EyesNose => "eyes-nose",
        },
        photos: &aligned,
        skipped: &skipped,
    };
    crate::atomic::write_atomic(
        &args.out.join("alignment.json"),
        serde_json::to_string_pretty(&doc)?.as_bytes(),
    )?;
    for a in &aligned {
        stdout::line(format_args!(
            "{} -> {}: scale {:.3}, rotation {:+.1} deg, rms {:.2} px",
            a.photo.display(),
            a.aligned.display(),
            a.scale,
            a.rotation_deg,
            a.rms_px
        ))?;
    }
    stdout::line(format_args!(
        "wrote {} aligned frames ({w}x{h}), {}{}",
        aligned.len(),
        sheet.display(),
        args.gif
            .as_ref()
            .map_or(String::new(), |g| format!(", {}", g.display()))
    ))?;
    if skipped.is_empty() {
        Ok(())
    } else {
        Err(Error::Problems(format!(
            "{} of {} photos skipped (no face found or unreadable)",
            skipped.len(),
            photos.len()
        )))
    }
}
