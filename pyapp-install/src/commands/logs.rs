//! `pyapp-install logs APP [-f] [-n N] [--since WHEN]`: the merged lines on stdout, as
//! `TIME SOURCE: MESSAGE` or (`--json`) one JSON object per line.

use std::io::{self, Write};

use anyhow::{Context, Result};

use crate::engine::logs::{self, LogLine, LogSink, LogsRequest};
use crate::engine::Target;
use crate::output::Output;

pub fn run(request: &LogsRequest, target: &Target, output: &Output) -> Result<()> {
    logs::logs(request, target, &mut Printer::new(output.json()))
}

/// Writes lines to stdout, human or JSON; notices when the reader has gone (`| head`).
struct Printer {
    json: bool,
    out: io::Stdout,
}

impl Printer {
    fn new(json: bool) -> Printer {
        Printer {
            json,
            out: io::stdout(),
        }
    }
}

impl LogSink for Printer {
    /// Prints `line`; `false` when nobody reads the output any more.
    fn line(&mut self, line: &LogLine) -> Result<bool> {
        let text = if self.json {
            let mut text =
                serde_json::to_string(&line.entry()).context("failed to encode a log line")?;
            text.push('\n');
            text
        } else {
            line.human()
        };
        let mut out = self.out.lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(err) => Err(err).context("failed to write to stdout"),
        }
    }
}
