//! (schema helper: see spec/FORMAT.md sections 2-5)
