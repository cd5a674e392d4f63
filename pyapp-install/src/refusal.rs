//! The refusal type both binaries share (pyapp-cli), where pyapp-install's modules find it.

pub use pyapp_cli::{find_refusal, Refusal};
