//! Datasets on disk, their validation, synthetic faces, and the training-time pipeline.
