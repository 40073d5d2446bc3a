//! Reproductions of published experiments.
