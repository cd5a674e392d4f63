//! (archive helper: see spec/FORMAT.md section 1)
