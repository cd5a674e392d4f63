//! `pyapp-install serve`: runs the management server until it is stopped; with
//! `--rotate-token`, writes a new token instead and prints its path.

use anyhow::Result;

use crate::cli::ServeArgs;
use crate::engine::Target;
use crate::output::Output;
use crate::server;
use crate::settings;

pub fn run(args: &ServeArgs, target: &Target, output: &Output) -> Result<()> {
    let request = settings::serve_request(args);
    if args.rotate_token {
        let dir = target.root.join(
            request
                .state_dir
                .strip_prefix("/")
                .unwrap_or(&request.state_dir),
        );
        let path = server::rotate_token(&dir)?;
        output.report(&serde_json::json!({ "action": "rotated", "token-file": path }))?;
        if !output.json() {
            pyapp_cli::print_stdout(&format!("{}\n", path.display()))?;
        }
        return Ok(());
    }
    server::serve(&request, target)
}
