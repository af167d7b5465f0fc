//! The command line's subcommands that are more than a few lines: `serve`, `run` (grade
//! scenarios against clients, optionally one CI shard) and `report` (join the results
//! of shards). `main.rs` parses the arguments and dispatches here.

pub mod report;
pub mod run;
pub mod serve;

use std::path::Path;
use std::process::ExitCode;

/// Prints a line; a closed stdout (`| head`) is not worth a panic.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Writes a report file; on failure says so and gives exit code 2.
pub fn write_file(path: &Path, text: Result<String, String>) -> Result<(), ExitCode> {
    let written = text.and_then(|t| std::fs::write(path, t).map_err(|e| e.to_string()));
    written.map_err(|e| {
        eprintln!("error: cannot write {}: {e}", path.display());
        ExitCode::from(2)
    })
}
