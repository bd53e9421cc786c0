//! `cargo xtask run`: start the release `sockstatsd` in the foreground, after saying where the
//! CLI is and how to ask it for the numbers (the CLI is not on PATH until `cargo xtask
//! install`).
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Result;

/// The `--socket` the daemon is given in `args` (`--socket PATH` or `--socket=PATH`), if any.
fn socket_arg(args: &[String]) -> Option<&str> {
    args.iter().enumerate().find_map(|(i, arg)| {
        arg.strip_prefix("--socket=").or_else(|| {
            (arg == "--socket")
                .then(|| args.get(i + 1).map(String::as_str))
                .flatten()
        })
    })
}

/// Quotes `text` for a POSIX shell when it needs it.
fn shell_quoted(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// What `cargo xtask run` prints before the daemon starts: where the CLI is, and a command to
/// paste into a second terminal that asks this daemon (its `--socket`, if `args` give one).
#[must_use]
pub fn cli_hint(release_dir: &Path, args: &[String]) -> String {
    let cli = release_dir.join("sockstats");
    let mut get = shell_quoted(&cli.display().to_string());
    if let Some(socket) = socket_arg(args) {
        get.push_str(" --socket ");
        get.push_str(&shell_quoted(socket));
    }
    get.push_str(" get");
    format!(
        "xtask: sockstatsd runs in the foreground here (Ctrl-C stops it). The CLI is {cli}, not on \
         PATH: in another terminal, run\n\
         \n    {get}\n\n\
         xtask: (`sudo cargo xtask install` puts sockstats and sockstatsd in /usr/local/bin)",
        cli = cli.display()
    )
}

/// Starts `<release_dir>/sockstatsd` with `args`, saying first how to reach it.
pub fn run_daemon(release_dir: &Path, args: &[String]) -> Result<()> {
    let daemon: PathBuf = release_dir.join("sockstatsd");
    eprintln!("{}", cli_hint(release_dir, args));
    eprintln!("xtask: starting {} {}", daemon.display(), args.join(" "));
    crate::run(Command::new(daemon).args(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|&a| a.to_owned()).collect()
    }

    #[test]
    fn the_hint_names_the_cli_and_a_get_to_paste() {
        let hint = cli_hint(Path::new("/src/sockstats/target/release"), &[]);
        assert!(
            hint.contains("\n    /src/sockstats/target/release/sockstats get\n"),
            "{hint}"
        );
        assert!(hint.contains("not on PATH"), "{hint}");
    }

    #[test]
    fn the_hint_asks_the_daemon_at_its_socket() {
        let release = Path::new("/my checkout/target/release");
        let hint = cli_hint(release, &strings(&["--socket", "/tmp/s.sock"]));
        assert!(
            hint.contains("'/my checkout/target/release/sockstats' --socket /tmp/s.sock get"),
            "{hint}"
        );
        let hint = cli_hint(release, &strings(&["--socket=/tmp/it's.sock"]));
        assert!(hint.contains(r"--socket '/tmp/it'\''s.sock' get"), "{hint}");
    }

    /// The README's first command says what this prints.
    #[test]
    fn the_readme_tells_where_the_cli_is_after_xtask_run() {
        let readme =
            std::fs::read_to_string(crate::workspace_root().join("README.md")).expect("README.md");
        assert!(readme.contains("target/release/sockstats get"), "README.md");
    }
}
