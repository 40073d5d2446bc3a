//! Decoded (and pre-downscaled) source images kept across epochs within a memory budget.
//!
//! Decoding a JPEG and antialiasing it down costs more than the warp itself, and neither depends
//! on the epoch: the cache stores the result the first time an image is used. When the budget
//! is full, further images are simply decoded every time (first come, first kept: no eviction
//! churn, and the pixels are identical either way, so batches do not depend on the cache).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use image::RgbImage;

/// An image ready for the warp: `image` may be smaller than the original, whose size the
/// landmark coordinates refer to.
#[derive(Debug)]
pub struct SourceImage {
    pub image: RgbImage,
    pub original: (u32, u32),
}

impl SourceImage {
    pub fn bytes(&self) -> usize {
        self.image.as_raw().len()
    }
}

pub struct ImageCache {
    budget: usize,
    state: Mutex<(HashMap<usize, Arc<SourceImage>>, usize)>,
}

impl ImageCache {
    pub fn new(budget_mb: usize) -> ImageCache {
        ImageCache {
            budget: budget_mb.saturating_mul(1 << 20),
            state: Mutex::new((HashMap::new(), 0)),
        }
    }

    pub fn get(&self, key: usize) -> Option<Arc<SourceImage>> {
        if self.budget == 0 {
            return None;
        }
        self.state.lock().expect("cache lock").0.get(&key).cloned()
    }

    /// Keeps `img` if it fits in the remaining budget; returns whether it was kept.
    pub fn insert(&self, key: usize, img: Arc<SourceImage>) -> bool {
        if self.budget == 0 {
            return false;
        }
        let mut st = self.state.lock().expect("cache lock");
        if st.0.contains_key(&key) {
            return true;
        }
        let size = img.bytes();
        if st.1 + size > self.budget {
            return false;
        }
        st.1 += size;
        st.0.insert(key, img);
        true
    }

    /// Bytes held and number of images.
    pub fn usage(&self) -> (usize, usize) {
        let st = self.state.lock().expect("cache lock");
        (st.1, st.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn respects_the_budget() {
        let cache = ImageCache::new(1);
        let img = |side| {
            Arc::new(SourceImage {
                image: RgbImage::new(side, side),
                original: (side, side),
            })
        };
        assert!(cache.insert(0, img(400))); // 480 000 bytes
        assert!(cache.insert(1, img(400)));
        assert!(!cache.insert(2, img(400))); // would exceed 1 MiB
        assert!(cache.get(1).is_some() && cache.get(2).is_none());
        assert_eq!(cache.usage(), (960_000, 2));
        assert!(!ImageCache::new(0).insert(0, img(1)));
    }
}
