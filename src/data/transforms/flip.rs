//! Horizontal flips that keep landmark identities: a mirrored left eye corner becomes the right
//! eye corner, so point indices are permuted along with the mirror.
//!
//! Built-in layouts:
//! - iBUG-68 (300-W): pairs from /work/shared/data/README.md (the standard 300-W symmetry).
//! - LaPa-106: the layout of the LaPa release (JD-AI's 106-point definition as LaPa numbers it):
//!   contour 0-32 (16 = chin), upper brows 33-37 / 42-46 and lower brows 38-41 / 47-50, nose bridge
//!   51-54, nose base 55-65 (60 central), eyes 66-73 / 75-82 (outer corners 66 and 79, the
//!   inter-ocular pair), pupils 74 / 83 and again 104 / 105, outer lips 84-95 (87 and 93 central),
//!   inner lips 96-103 (98 and 102 central). Derived from the point positions in the two genuine
//!   LaPa files in /work/shared/data/lapa-samples and cross-checked, pair by pair, against the
//!   `swap` entries of MMPose's LaPa dataset description (configs/_base_/datasets/lapa.py).

use image::RgbImage;

use crate::data::sources::points::PointSelection;
use crate::data::transforms::warp::Mat3;
use crate::{Error, Keypoints, Result};

/// iBUG-68 left/right pairs (0-based).
pub const IBUG68_PAIRS: &[(usize, usize)] = &[
    // jaw
    (0, 16),
    (1, 15),
    (2, 14),
    (3, 13),
    (4, 12),
    (5, 11),
    (6, 10),
    (7, 9),
    // brows
    (17, 26),
    (18, 25),
    (19, 24),
    (20, 23),
    (21, 22),
    // nose
    (31, 35),
    (32, 34),
    // eyes
    (36, 45),
    (37, 44),
    (38, 43),
    (39, 42),
    (40, 47),
    (41, 46),
    // mouth
    (48, 54),
    (49, 53),
    (50, 52),
    (55, 59),
    (56, 58),
    (60, 64),
    (61, 63),
    (65, 67),
];

/// LaPa-106 left/right pairs (0-based); see the module notes for the source.
pub const LAPA106_PAIRS: &[(usize, usize)] = &[
    // contour: i <-> 32 - i, 16 central
    (0, 32),
    (1, 31),
    (2, 30),
    (3, 29),
    (4, 28),
    (5, 27),
    (6, 26),
    (7, 25),
    (8, 24),
    (9, 23),
    (10, 22),
    (11, 21),
    (12, 20),
    (13, 19),
    (14, 18),
    (15, 17),
    // upper brow edges (outer -> inner on the left, inner -> outer on the right)
    (33, 46),
    (34, 45),
    (35, 44),
    (36, 43),
    (37, 42),
    // lower brow edges
    (38, 50),
    (39, 49),
    (40, 48),
    (41, 47),
    // nose base (60 central; bridge 51-54 central)
    (55, 65),
    (56, 64),
    (57, 63),
    (58, 62),
    (59, 61),
    // eyes: corners 66/79 (outer) and 70/75 (inner), lids, pupils
    (66, 79),
    (67, 78),
    (68, 77),
    (69, 76),
    (70, 75),
    (71, 82),
    (72, 81),
    (73, 80),
    (74, 83),
    // outer lips (87, 93 central)
    (84, 90),
    (85, 89),
    (86, 88),
    (91, 95),
    (92, 94),
    // inner lips (98, 102 central)
    (96, 100),
    (97, 99),
    (101, 103),
    // pupils again
    (104, 105),
];

/// The involution defined by symmetric pairs over `n` points (unpaired points map to themselves).
pub fn permutation_from_pairs(n: usize, pairs: &[(usize, usize)]) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for &(a, b) in pairs {
        p[a] = b;
        p[b] = a;
    }
    p
}

/// The built-in mirror permutation for a full point set of `n` points, if there is one.
pub fn builtin_permutation(n: usize) -> Option<Vec<usize>> {
    match n {
        68 => Some(permutation_from_pairs(68, IBUG68_PAIRS)),
        106 => Some(permutation_from_pairs(106, LAPA106_PAIRS)),
        _ => None,
    }
}

/// Checks that `perm` is a permutation of `0..len` that is its own inverse (a mirror applied
/// twice must give back the same identities).
pub fn check_permutation(perm: &[usize]) -> Result<()> {
    let n = perm.len();
    for (i, &j) in perm.iter().enumerate() {
        if j >= n {
            return Err(Error::config(format!(
                "flip permutation: entry {i} is {j}, outside 0..{n}"
            )));
        }
        if perm[j] != i {
            return Err(Error::config(format!(
                "flip permutation is not symmetric: {i} -> {j} but {j} -> {}",
                perm[j]
            )));
        }
    }
    Ok(())
}

/// Restricts a permutation of a full point set to the selected `indices` (positions in the full
/// set). The selection must be closed under the permutation: a flipped left eye needs its right
/// eye among the selected points.
pub fn restrict_permutation(full: &[usize], indices: &[usize]) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(indices.len());
    for &i in indices {
        let Some(&partner) = full.get(i) else {
            return Err(Error::config(format!(
                "point {i} is outside the {} points of the flip permutation",
                full.len()
            )));
        };
        match indices.iter().position(|&k| k == partner) {
            Some(pos) => out.push(pos),
            None => {
                return Err(Error::config(format!(
                    "horizontal flip: the selected points {indices:?} are not closed under the \
                     mirror permutation (point {i} mirrors to point {partner}, which is not \
                     selected); select both points of each pair or set pipeline.flip.p = 0"
                )))
            }
        }
    }
    Ok(out)
}

/// The mirror permutation for points `indices` (None = all) of files with `n_in_file` points:
/// `custom` (over the file's points) when given, else the built-in layout for 68 or 106 points.
pub fn flip_permutation_for_indices(
    n_in_file: usize,
    indices: Option<&[usize]>,
    custom: Option<&[usize]>,
) -> Result<Vec<usize>> {
    let full = match custom {
        Some(c) => {
            if c.len() != n_in_file {
                return Err(Error::config(format!(
                    "pipeline.flip.permutation has {} entries but the landmark files have {} points",
                    c.len(),
                    n_in_file
                )));
            }
            check_permutation(c)?;
            c.to_vec()
        }
        None => builtin_permutation(n_in_file).ok_or_else(|| {
            Error::config(format!(
                "horizontal flip: no known left/right permutation for {n_in_file} points \
                 (built in: 68 iBUG, 106 LaPa); give pipeline.flip.permutation or set \
                 pipeline.flip.p = 0"
            ))
        })?,
    };
    match indices {
        None => Ok(full),
        Some(ix) => restrict_permutation(&full, ix),
    }
}

/// The mirror permutation for the points `selection` picks from files of `n_points_in_file`
/// points: `custom` (over the file's points) when given, else the built-in iBUG-68 or LaPa-106
/// layout; a selection must contain both points of every pair it touches.
pub fn flip_permutation(
    n_points_in_file: usize,
    selection: &PointSelection,
    custom: Option<&[usize]>,
) -> Result<Vec<usize>> {
    match selection {
        PointSelection::All => flip_permutation_for_indices(n_points_in_file, None, custom),
        PointSelection::Indices(ix) => {
            if let Some(&bad) = ix.iter().find(|&&i| i >= n_points_in_file) {
                return Err(Error::config(format!(
                    "point {bad} selected but the landmark files have {n_points_in_file} points"
                )));
            }
            flip_permutation_for_indices(n_points_in_file, Some(ix), custom)
        }
    }
}

/// The mirror of a frame `width` pixels wide: pixel `i` goes to `width - 1 - i`.
pub fn mirror_matrix(width: usize) -> Mat3 {
    Mat3::affine(-1.0, 0.0, width as f64 - 1.0, 0.0, 1.0, 0.0)
}

/// Mirrors points in a frame `width` pixels wide and swaps their identities with `perm`.
pub fn flip_keypoints(kp: &Keypoints, perm: &[usize], width: usize) -> Keypoints {
    assert_eq!(kp.len(), perm.len(), "flip permutation length");
    let mirrored = |[x, y]: [f32; 2]| [width as f32 - 1.0 - x, y];
    permute(
        &Keypoints {
            xy: kp.xy.iter().map(|&p| mirrored(p)).collect(),
            visible: kp.visible.clone(),
        },
        perm,
    )
}

/// Reorders points: the new point `i` is the old point `perm[i]`.
pub fn permute(kp: &Keypoints, perm: &[usize]) -> Keypoints {
    Keypoints {
        xy: perm.iter().map(|&j| kp.xy[j]).collect(),
        visible: perm.iter().map(|&j| kp.visible[j]).collect(),
    }
}

/// A mirrored copy of an image together with its points.
pub fn flip_horizontal(img: &RgbImage, kp: &Keypoints, perm: &[usize]) -> (RgbImage, Keypoints) {
    let flipped = image::imageops::flip_horizontal(img);
    (flipped, flip_keypoints(kp, perm, img.width() as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_layouts_are_involutions_without_overlaps() {
        for (n, pairs) in [(68, IBUG68_PAIRS), (106, LAPA106_PAIRS)] {
            let mut seen = vec![false; n];
            for &(a, b) in pairs {
                assert!(
                    a != b && !seen[a] && !seen[b],
                    "point reused in {n}-point pairs"
                );
                seen[a] = true;
                seen[b] = true;
            }
            check_permutation(&builtin_permutation(n).unwrap()).unwrap();
        }
        let ib = builtin_permutation(68).unwrap();
        for mid in [8, 27, 28, 29, 30, 33, 51, 57, 62, 66] {
            assert_eq!(ib[mid], mid);
        }
        assert_eq!(ib[36], 45);
        let lapa = builtin_permutation(106).unwrap();
        assert_eq!(lapa[66], 79);
        for mid in [16, 51, 52, 53, 54, 60, 87, 93, 98, 102] {
            assert_eq!(lapa[mid], mid);
        }
    }

    #[test]
    fn selections_restrict_or_refuse() {
        let p = flip_permutation_for_indices(68, Some(&[8, 30, 36, 45, 57]), None).unwrap();
        assert_eq!(p, vec![0, 1, 3, 2, 4]);
        let err = flip_permutation_for_indices(68, Some(&[8, 30, 36]), None).unwrap_err();
        assert!(err.to_string().contains("not closed"), "{err}");
        let err = flip_permutation_for_indices(5, None, None).unwrap_err();
        assert!(err.to_string().contains("no known"), "{err}");
        assert_eq!(
            flip_permutation_for_indices(3, None, Some(&[2, 1, 0])).unwrap(),
            vec![2, 1, 0]
        );
        assert!(flip_permutation_for_indices(3, None, Some(&[1, 2, 0])).is_err());
        assert!(flip_permutation_for_indices(3, None, Some(&[1, 0])).is_err());
        let sel: PointSelection = "30,40,50,60,70".parse().unwrap();
        assert!(flip_permutation(106, &sel, None).is_err());
        let sel = PointSelection::Indices(vec![66, 79, 16]);
        assert_eq!(flip_permutation(106, &sel, None).unwrap(), vec![1, 0, 2]);
        assert_eq!(
            flip_permutation(68, &PointSelection::All, None).unwrap()[45],
            36
        );
    }
}
