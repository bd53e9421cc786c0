//! Internal: writes the man pages (`sockstats_daemon::man`) below DIR (`DIR/man1`, `DIR/man8`)
//! and prints each file written. Run by `cargo xtask install`; not installed itself.
use std::{path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: man_pages DIR");
        return ExitCode::FAILURE;
    };
    match sockstats_daemon::man::write_pages(&dir) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "man_pages: cannot write the man pages below {}: {error}",
                dir.display()
            );
            ExitCode::FAILURE
        }
    }
}
