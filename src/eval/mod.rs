//! Evaluation of a trained model and prediction on new images.
