//! Shell completions and man pages from a binary's clap definition.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Command;
use clap_complete::Shell;

/// The `completions` and `man` actions each binary offers.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Generate {
    /// Print a shell completion script on stdout, e.g.
    /// `pyapp-install completions bash > /etc/bash_completion.d/pyapp-install`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: Shell,
    },

    /// Print the man page (roff) on stdout, or with --out-dir write one page per command
    /// (`NAME.1`, `NAME-SUBCOMMAND.1`) into DIR, e.g. for /usr/share/man/man1.
    Man {
        /// Write the pages into this directory instead of printing the main page.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

impl Generate {
    /// Generates for `command` (the binary's `CommandFactory::command()`); the files
    /// written, if any.
    pub fn run(&self, mut command: Command) -> Result<Vec<PathBuf>> {
        command.build();
        match self {
            Generate::Completions { shell } => {
                let name = command.get_name().to_string();
                let mut script = Vec::new();
                clap_complete::generate(*shell, &mut command, name, &mut script);
                crate::print_stdout(&String::from_utf8_lossy(&script))?;
                Ok(Vec::new())
            }
            Generate::Man { out_dir: None } => {
                let mut roff = Vec::new();
                clap_mangen::Man::new(command)
                    .render(&mut roff)
                    .context("failed to render the man page")?;
                crate::print_stdout(&String::from_utf8_lossy(&roff))?;
                Ok(Vec::new())
            }
            Generate::Man { out_dir: Some(dir) } => write_pages(&command, dir),
        }
    }
}

/// The page of `command` and of each visible subcommand, as `NAME[-SUB].1` in `dir`.
fn write_pages(command: &Command, dir: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("failed to create `{}`", dir.display()))?;
    let name = command.get_name().to_string();
    let mut pages = vec![(name.clone(), command.clone())];
    let documented = |sub: &&Command| !sub.is_hide_set() && sub.get_name() != "help";
    for sub in command.get_subcommands().filter(documented) {
        let page = format!("{name}-{}", sub.get_name());
        pages.push((page.clone(), sub.clone().name(page)));
    }
    let mut written = Vec::new();
    for (page, command) in pages {
        let path = dir.join(format!("{page}.1"));
        let mut roff = Vec::new();
        clap_mangen::Man::new(command)
            .render(&mut roff)
            .context("failed to render a man page")?;
        fs::write(&path, roff).with_context(|| format!("failed to write `{}`", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
