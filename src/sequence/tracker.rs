//! Faces followed through a frame sequence, the way MediaPipe's face pipeline does it: detect,
//! then crop each next frame from the previous frame's landmarks (the model's crop convention:
//! the box of the points, see [`super::faces`]), so that most frames need no detection. The
//! detector runs again when a track's mean landmark confidence falls below a threshold (the
//! face moved too fast, turned away or left), every `redetect_every` frames (new faces), and on
//! every frame while no face is followed. A track that neither its crop nor a detection
//! confirms is dropped; a detection near where a recently dropped track was takes its id back,
//! so a face that leaves the frame and returns keeps its id. Each track's points are smoothed
//! by a One Euro filter per coordinate ([`super::one_euro`]), time taken from the frame index
//! and the frame rate.

use image::RgbImage;

use super::faces::{points_box, FaceModel, FacePoints};
use super::one_euro::{OneEuroSettings, PointsFilter};
use crate::keypoints::mean_point;
use crate::predict::PointPrediction;
use crate::{BBox, Result};

#[derive(Clone, Debug)]
pub struct TrackOptions {
    /// Run the detector at least every this many frames (0: only when a face is lost or none
    /// is followed).
    pub redetect_every: usize,
    /// A track whose mean landmark confidence falls below this is re-detected (and dropped if
    /// no detection confirms it).
    pub min_confidence: f32,
    /// Smoothing; `None` leaves the points raw.
    pub smooth: Option<OneEuroSettings>,
    /// Frames per second: the filter's clock (frame `i` is at `i / fps` seconds).
    pub fps: f64,
    /// A dropped track's id is given back to a face detected near its last place within this
    /// many frames.
    pub remember_frames: usize,
}

impl Default for TrackOptions {
    fn default() -> Self {
        TrackOptions {
            redetect_every: 30,
            min_confidence: 0.35,
            smooth: Some(OneEuroSettings::default()),
            fps: 30.0,
            remember_frames: 90,
        }
    }
}

/// How a face's points in a frame were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Found {
    /// From a detector box.
    Detected,
    /// From the crop of the previous frame's points.
    Tracked,
}

/// One face in one frame.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrackedFace {
    /// Kept across frames for the same face.
    pub id: u32,
    pub found: Found,
    /// The landmark box the face's crop was made around (`[x, y, w, h]` in JSON).
    #[serde(rename = "box", serialize_with = "crate::bbox::serialize_xywh")]
    pub bbox: BBox,
    /// Mean landmark confidence.
    pub confidence: f32,
    /// The model's points (raw).
    pub points: Vec<PointPrediction>,
    /// The One Euro filter's points (equal to the raw ones without smoothing).
    pub smoothed: Vec<[f32; 2]>,
}

/// The faces of one frame.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FrameFaces {
    pub frame: usize,
    /// Whether the detector ran on this frame.
    pub detector_ran: bool,
    pub faces: Vec<TrackedFace>,
}

struct Track {
    id: u32,
    filter: Option<PointsFilter>,
    /// The last frame's raw points: the next frame's crop.
    last: Vec<[f32; 2]>,
    /// How far the points' centre moved from the frame before to the last (pixels per frame):
    /// the next crop is moved on by as much. A top-down model pulls its points towards the
    /// middle of its crop when the face sits off-centre, so a crop left where the face was
    /// drags the points behind a fast face (on a real face moving up to 19 px per frame, the
    /// raw points' worst mean error fell from 5.6 to 4.2 px with the crop moved on).
    velocity: [f32; 2],
}

/// The mean of finite points (`None` without any).
fn centre(points: &[[f32; 2]]) -> Option<[f32; 2]> {
    let finite: Vec<[f32; 2]> = points
        .iter()
        .copied()
        .filter(|p| p.iter().all(|v| v.is_finite()))
        .collect();
    mean_point(&finite)
}

/// A dropped track: its id, last landmark box and the frame it was lost in.
struct Lost {
    id: u32,
    bbox: BBox,
    frame: usize,
}

pub struct Tracker {
    opts: TrackOptions,
    tracks: Vec<Track>,
    lost: Vec<Lost>,
    next_id: u32,
    frame: usize,
    since_detection: usize,
}

fn centre_distance_in_sides(a: BBox, b: BBox) -> f32 {
    let ([ax, ay], [bx, by]) = (a.centre(), b.centre());
    (ax - bx).hypot(ay - by) / a.longer_side().max(b.longer_side()).max(1.0)
}

/// A crop result before it becomes a frame's face.
struct Candidate {
    found: Found,
    bbox: BBox,
    face: FacePoints,
}

impl Candidate {
    fn points_box(&self) -> BBox {
        points_box(&self.face.xy()).unwrap_or(self.bbox)
    }
}

/// A prediction whose points' centre lies inside the image (a crop padded past the border still
/// gives points, but a face whose centre left the frame is gone).
fn centre_inside(img: &RgbImage, b: BBox) -> bool {
    let [cx, cy] = b.centre();
    cx >= 0.0 && cy >= 0.0 && cx < img.width() as f32 && cy < img.height() as f32
}

impl Tracker {
    pub fn new(opts: TrackOptions) -> Self {
        Tracker {
            opts,
            tracks: Vec::new(),
            lost: Vec::new(),
            next_id: 0,
            frame: 0,
            since_detection: 0,
        }
    }

    /// Follows the faces into the next frame `img`.
    pub fn step(&mut self, model: &mut FaceModel, img: &RgbImage) -> Result<FrameFaces> {
        let frame = self.frame;
        self.frame += 1;
        let min_conf = self.opts.min_confidence;
        // 1. Each track's crop from its previous points.
        let boxes: Vec<BBox> = self
            .tracks
            .iter()
            .map(|t| {
                points_box(&t.last)
                    .map(|b| b.shifted(t.velocity[0], t.velocity[1]))
                    .unwrap_or(BBox::from_corners(0.0, 0.0, 1.0, 1.0))
            })
            .collect();
        let tracked = model.points_in_boxes(img, &boxes)?;
        let mut cands: Vec<Option<Candidate>> = boxes
            .iter()
            .zip(tracked)
            .map(|(&bbox, face)| {
                let c = Candidate {
                    found: Found::Tracked,
                    bbox,
                    face,
                };
                (c.face.mean_confidence() >= min_conf && centre_inside(img, c.points_box()))
                    .then_some(c)
            })
            .collect();
        // 2. The detector, when a track failed, none is followed, or it is time.
        let due =
            self.opts.redetect_every > 0 && self.since_detection + 1 >= self.opts.redetect_every;
        let detector_ran = self.tracks.is_empty() || cands.iter().any(Option::is_none) || due;
        if detector_ran {
            self.since_detection = 0;
            let found = model.detect_and_predict(img)?;
            let mut new_faces = Vec::new();
            for (det, face) in found {
                let c = Candidate {
                    found: Found::Detected,
                    bbox: crate::detect::landmark_box(det.bbox),
                    face,
                };
                if c.face.mean_confidence() < min_conf {
                    continue; // the detector's false positives give low landmark confidence
                }
                let pb = c.points_box();
                // The track this detection is: the one whose last points overlap it most.
                let best = self
                    .tracks
                    .iter()
                    .enumerate()
                    .map(|(k, t)| {
                        let tb = match &cands[k] {
                            Some(tc) => tc.points_box(),
                            None => points_box(&t.last).unwrap_or_default(),
                        };
                        (k, pb.iou(&tb))
                    })
                    .filter(|&(_, v)| v > 0.3)
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                match best {
                    // Confirmed: keep the more confident of the crop and the detection.
                    Some((k, _)) => {
                        let keep = cands[k].as_ref().is_some_and(|tc| {
                            tc.face.mean_confidence() >= c.face.mean_confidence()
                        });
                        if !keep {
                            cands[k] = Some(c);
                        }
                    }
                    None => new_faces.push(c),
                }
            }
            // Tracks neither crop nor detection confirmed are dropped (their ids remembered).
            let mut kept_tracks = Vec::new();
            let mut kept_cands = Vec::new();
            for (t, c) in std::mem::take(&mut self.tracks).into_iter().zip(cands) {
                match c {
                    Some(c) => {
                        kept_tracks.push(t);
                        kept_cands.push(Some(c));
                    }
                    None => self.lost.push(Lost {
                        id: t.id,
                        bbox: points_box(&t.last).unwrap_or_default(),
                        frame,
                    }),
                }
            }
            self.tracks = kept_tracks;
            cands = kept_cands;
            let remember = self.opts.remember_frames;
            self.lost.retain(|l| frame - l.frame <= remember);
            for c in new_faces {
                let id = self.reclaim_id(c.points_box());
                self.tracks.push(Track {
                    id,
                    filter: self
                        .opts
                        .smooth
                        .map(|s| PointsFilter::new(s, c.face.points.len())),
                    last: Vec::new(),
                    velocity: [0.0; 2],
                });
                cands.push(Some(c));
            }
        } else {
            self.since_detection += 1;
        }
        // 3. Two tracks that converged on one face: the older one stays.
        let mut faces = Vec::new();
        let t = frame as f64 / self.opts.fps;
        let mut keep = vec![true; self.tracks.len()];
        for i in 0..self.tracks.len() {
            for j in 0..i {
                if keep[j] && keep[i] {
                    if let (Some(a), Some(b)) = (&cands[j], &cands[i]) {
                        if a.points_box().iou(&b.points_box()) > 0.5 {
                            keep[i] = false;
                        }
                    }
                }
            }
        }
        let mut k = 0;
        self.tracks.retain(|_| {
            k += 1;
            keep[k - 1]
        });
        let cands: Vec<Candidate> = cands
            .into_iter()
            .zip(keep)
            .filter_map(|(c, k)| if k { c } else { None })
            .collect();
        // 4. Smoothing and the frame's faces.
        for (track, c) in self.tracks.iter_mut().zip(cands) {
            let raw = c.face.xy();
            let smoothed = match &mut track.filter {
                Some(f) => f.filter(t, &raw),
                None => raw.clone(),
            };
            track.velocity = match (centre(&track.last), centre(&raw)) {
                (Some(a), Some(b)) => [b[0] - a[0], b[1] - a[1]],
                _ => [0.0; 2],
            };
            track.last = raw;
            faces.push(TrackedFace {
                id: track.id,
                found: c.found,
                bbox: c.bbox,
                confidence: c.face.mean_confidence(),
                points: c.face.points,
                smoothed,
            });
        }
        Ok(FrameFaces {
            frame,
            detector_ran,
            faces,
        })
    }

    /// The id of the remembered lost track nearest `bbox` (within three face sides), else a
    /// new one.
    fn reclaim_id(&mut self, bbox: BBox) -> u32 {
        let nearest = self
            .lost
            .iter()
            .enumerate()
            .map(|(k, l)| (k, centre_distance_in_sides(l.bbox, bbox)))
            .filter(|&(_, d)| d < 3.0)
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match nearest {
            Some((k, _)) => self.lost.remove(k).id,
            None => {
                self.next_id += 1;
                self.next_id - 1
            }
        }
    }
}
