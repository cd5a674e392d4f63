//! The operations pyapp-install performs, as typed functions the command line and the
//! management API both call: install, rollback, remove, config, status, logs, list, run,
//! watch, gc. They take typed requests (never command-line types), report progress
//! through a trait and return what they did; they never print.

pub mod activation;
pub mod config;
pub mod gc;
pub mod install;
pub mod list;
pub mod logs;
mod progress;
pub mod remove;
pub mod rollback;
pub mod run;
pub mod status;
pub mod watch;

pub use progress::{Progress, Silent, Task};
