//! Man pages rendered (with `clap_mangen`) from the same clap definitions the binaries parse
//! with ([`crate::cli::args`], [`crate::daemon::args`]): `sockstats(1)`, one page per
//! subcommand (`sockstats-get(1)`, `sockstats-rules-add(1)`, …) and `sockstatsd(8)`.
//! `cargo xtask install` writes them with the internal `man_pages` example.
use std::{
    fs, io,
    path::{Path, PathBuf},
};

use clap::CommandFactory as _;

/// One rendered page.
#[derive(Debug)]
pub struct Page {
    /// Where it goes below a man directory, e.g. `man1/sockstats-get.1`.
    pub path: PathBuf,
    /// The roff source.
    pub roff: Vec<u8>,
}

/// Every page: the CLI's (section 1) and the daemon's (section 8).
pub fn pages() -> io::Result<Vec<Page>> {
    let mut pages = Vec::new();
    let cli = crate::cli::args::Args::command().disable_help_subcommand(true);
    render_tree(cli, "1", &mut pages)?;
    render_tree(crate::daemon::args::Args::command(), "8", &mut pages)?;
    Ok(pages)
}

/// Renders `command` and its visible subcommands, recursively, in `section`.
fn render_tree(mut command: clap::Command, section: &str, pages: &mut Vec<Page>) -> io::Result<()> {
    // Building fills in the subcommands' display names (`sockstats-rules-add`).
    command.build();
    let notes = command.get_after_long_help().map(ToString::to_string);
    let man = clap_mangen::Man::new(command.clone().after_long_help(None::<&'static str>))
        .section(section)
        .source(format!("sockstats {}", env!("CARGO_PKG_VERSION")))
        .manual("sockstats");
    let mut roff = Vec::new();
    man.render_title(&mut roff)?;
    man.render_name_section(&mut roff)?;
    man.render_synopsis_section(&mut roff)?;
    man.render_description_section(&mut roff)?;
    man.render_options_section(&mut roff)?;
    if command.has_subcommands() {
        man.render_subcommands_section(&mut roff)?;
    }
    if let Some(notes) = notes {
        roff.extend_from_slice(notes_sections(&notes).as_bytes());
    }
    roff.extend_from_slice(see_also(command.get_name(), section).as_bytes());
    if command.get_version().is_some() {
        man.render_version_section(&mut roff)?;
    }
    pages.push(Page {
        path: Path::new(&format!("man{section}")).join(man.get_filename()),
        roff,
    });
    for subcommand in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        render_tree(subcommand.clone(), section, pages)?;
    }
    Ok(())
}

/// Text for roff: backslashes and hyphens escaped, no line starting with a control character.
fn escape(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with(['.', '\'']) {
        format!("\\&{text}")
    } else {
        text
    }
}

/// The `--help` notes after the options (`Examples:`, `Files:`, `Exit status: …`) as man page
/// sections: one per paragraph that starts with `Heading:`; an indented list (the heading
/// alone on its line) stays as it is, line by line, prose is filled.
fn notes_sections(notes: &str) -> String {
    let mut roff = String::new();
    for paragraph in notes.split("\n\n") {
        let (heading, body) = match paragraph.split_once(':') {
            Some((heading, body)) if !heading.contains('\n') && heading.len() < 30 => {
                (heading.to_uppercase(), body)
            }
            _ => ("NOTES".to_owned(), paragraph),
        };
        roff.push_str(".SH ");
        roff.push_str(&heading);
        roff.push('\n');
        if let Some(lines) = body.strip_prefix('\n') {
            roff.push_str(".nf\n");
            for line in lines.lines() {
                roff.push_str(&escape(line));
                roff.push('\n');
            }
            roff.push_str(".fi\n");
        } else {
            for line in body.trim().lines() {
                roff.push_str(&escape(line.trim()));
                roff.push('\n');
            }
        }
    }
    roff
}

/// The other top-level page, for the two top-level pages; the parent page for subcommands.
fn see_also(name: &str, section: &str) -> String {
    let others = match (name, section) {
        ("sockstats", _) => "sockstatsd(8)".to_owned(),
        ("sockstatsd", _) => "sockstats(1), systemctl(1)".to_owned(),
        _ => "sockstats(1), sockstatsd(8)".to_owned(),
    };
    format!(".SH \"SEE ALSO\"\n{}\n", escape(&others))
}

/// Writes every page below `dir` (`dir/man1/…`, `dir/man8/…`); returns the files written.
pub fn write_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for page in pages()? {
        let path = dir.join(&page.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, &page.roff)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(pages: &[Page], path: &str) -> String {
        let page = pages
            .iter()
            .find(|page| page.path == Path::new(path))
            .unwrap_or_else(|| panic!("no page {path}"));
        String::from_utf8(page.roff.clone()).expect("roff is UTF-8")
    }

    #[test]
    fn one_page_per_command_in_its_section() {
        let pages = pages().expect("pages render");
        let mut paths: Vec<_> = pages.iter().map(|p| p.path.display().to_string()).collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "man1/sockstats-completions.1",
                "man1/sockstats-debug.1",
                "man1/sockstats-get.1",
                "man1/sockstats-history-reset.1",
                "man1/sockstats-history.1",
                "man1/sockstats-labels.1",
                "man1/sockstats-quotas.1",
                "man1/sockstats-rules-add.1",
                "man1/sockstats-rules-remove.1",
                "man1/sockstats-rules.1",
                "man1/sockstats-run.1",
                "man1/sockstats-status.1",
                "man1/sockstats-top.1",
                "man1/sockstats-watch.1",
                "man1/sockstats.1",
                "man8/sockstatsd.8",
            ]
        );
    }

    #[test]
    fn pages_hold_the_flags_and_sections() {
        let pages = pages().expect("pages render");
        let daemon = page(&pages, "man8/sockstatsd.8");
        assert!(daemon.contains(".TH sockstatsd 8"), "{daemon}");
        for flag in [
            "socket",
            "bpffs",
            "rules",
            "validate",
            "uninstall",
            "metrics",
        ] {
            assert!(daemon.contains(flag), "sockstatsd.8 lacks {flag}");
        }
        let cli = page(&pages, "man1/sockstats.1");
        assert!(cli.contains(".TH sockstats 1"), "{cli}");
        assert!(cli.contains(".SH EXAMPLES\n.nf\n  sockstats get "), "{cli}");
        assert!(
            cli.contains(".SH \"EXIT STATUS\"") || cli.contains(".SH EXIT STATUS"),
            "{cli}"
        );
        assert!(daemon.contains(".SH FILES\n.nf\n"), "{daemon}");
        assert!(daemon.contains("/etc/sockstats/rules.conf"), "{daemon}");
        let get = page(&pages, "man1/sockstats-get.1");
        assert!(get.contains("validation") && get.contains("interfaces"));
        assert!(
            get.contains(".SH \"SEE ALSO\"\nsockstats(1), sockstatsd(8)"),
            "{get}"
        );
    }
}
