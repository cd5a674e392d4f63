//! (wheel helper)
