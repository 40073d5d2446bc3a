//! Landmark accuracy: NMAE, NME, failure rate, AUC, per-point errors.
