//! What goes into `DEBIAN/`: the control file (dependencies read from the binaries), the
//! maintainer scripts, which start nothing, and the copyright file.

use super::{BPFFS_DIR, PACKAGE, STATE_DIR};

/// The highest `GLIBC_x.y` symbol version `binary` asks for, as `x.y`.
pub(super) fn glibc_needed(binary: &[u8]) -> Option<String> {
    let needle = b"GLIBC_";
    let mut best: Option<(u32, u32)> = None;
    let mut at = 0;
    while let Some(offset) = binary[at..]
        .windows(needle.len())
        .position(|window| window == needle)
    {
        let start = at + offset + needle.len();
        let end = binary[start..]
            .iter()
            .position(|byte| !(byte.is_ascii_digit() || *byte == b'.'))
            .map_or(binary.len(), |length| start + length);
        let text = String::from_utf8_lossy(&binary[start..end]);
        let mut parts = text.split('.').map(str::parse::<u32>);
        if let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) {
            best = best.max(Some((major, minor)));
        }
        at = end.max(start);
    }
    best.map(|(major, minor)| format!("{major}.{minor}"))
}

/// The `Depends` field: glibc at least as new as the newest symbol version the binaries use,
/// and `libgcc_s` (Rust's standard library unwinds with it).
pub(super) fn depends(binaries: &[Vec<u8>]) -> String {
    let glibc = binaries
        .iter()
        .filter_map(|binary| glibc_needed(binary))
        .max_by(|a, b| {
            let key = |v: &String| {
                v.split('.')
                    .map(|part| part.parse::<u32>().unwrap_or(0))
                    .collect::<Vec<_>>()
            };
            key(a).cmp(&key(b))
        });
    match glibc {
        Some(version) => format!("libc6 (>= {version}), libgcc-s1"),
        None => "libc6, libgcc-s1".to_owned(),
    }
}

/// What goes in `DEBIAN/control`.
pub(super) struct Control<'a> {
    pub(super) version: &'a str,
    pub(super) arch: &'a str,
    pub(super) installed_size_kib: u64,
    pub(super) depends: &'a str,
    pub(super) maintainer: &'a str,
}

pub(super) fn render_control(control: &Control) -> String {
    format!(
        "\
Package: {PACKAGE}
Version: {version}
Architecture: {arch}
Maintainer: {maintainer}
Installed-Size: {size}
Depends: {depends}
Section: net
Priority: optional
Homepage: {homepage}
Description: exact per-label network bytes of every TCP/UDP socket (eBPF)
 sockstatsd counts, with eBPF programs in the kernel, the payload bytes every TCP
 and UDP socket of this host sends and receives, per label: programs label their
 sockets over a Unix socket, rules label them by uid or cgroup, and the sockstats
 command shows which part of your software spends the network.
 .
 Installing starts nothing: the systemd unit is installed disabled. Start it with
 `systemctl enable --now sockstatsd`.
",
        version = control.version,
        arch = control.arch,
        maintainer = control.maintainer,
        size = control.installed_size_kib,
        depends = control.depends,
        homepage = env!("CARGO_PKG_REPOSITORY"),
    )
}

/// `DEBFULLNAME <DEBEMAIL>` when both are set (Debian's convention), else the project.
pub(super) fn maintainer() -> String {
    match (std::env::var("DEBFULLNAME"), std::env::var("DEBEMAIL")) {
        (Ok(name), Ok(email)) if !name.is_empty() && !email.is_empty() => {
            format!("{name} <{email}>")
        }
        _ => format!("sockstats developers <{}>", env!("CARGO_PKG_REPOSITORY")),
    }
}

/// After unpacking: nothing is started or enabled (the daemon loads programs into the running
/// kernel; that is the administrator's call). With systemd running, it learns of the unit; an
/// upgrade restarts a daemon that was running, as Debian's packages do.
pub(super) const POSTINST: &str = r#"#!/bin/sh
# sockstats: starts nothing. The unit is installed disabled.
set -e
if [ "$1" = configure ]; then
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        if [ -n "$2" ]; then
            systemctl try-restart sockstatsd.service >/dev/null || true
        fi
    fi
    if [ -z "$2" ]; then
        echo "sockstats: sockstatsd is installed, not started; start it with: systemctl enable --now sockstatsd"
    fi
fi
exit 0
"#;

/// Before removing (not upgrading): stop and disable the service, then detach the programs,
/// which otherwise stay attached and counting with nothing left to detach them.
pub(super) const PRERM: &str = r#"#!/bin/sh
set -e
if [ "$1" = remove ]; then
    if [ -d /run/systemd/system ]; then
        systemctl stop sockstatsd.service >/dev/null 2>&1 || true
    fi
    if command -v systemctl >/dev/null 2>&1; then
        systemctl --no-reload disable sockstatsd.service >/dev/null 2>&1 || true
    fi
    if [ -d @BPFFS_DIR@ ]; then
        RUST_LOG_STYLE=never /usr/bin/sockstatsd --uninstall --bpffs-dir @BPFFS_DIR@ \
            || echo "sockstats: could not detach the programs pinned under @BPFFS_DIR@ (is a sockstatsd still running?)" >&2
    fi
fi
exit 0
"#;

/// After removing: systemd forgets the unit; purging also deletes the state dir (labels and
/// the rules clients added). dpkg deletes the rules file, a conffile, on purge itself.
pub(super) const POSTRM: &str = r#"#!/bin/sh
set -e
if [ "$1" = remove ] || [ "$1" = purge ]; then
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
    fi
fi
if [ "$1" = purge ]; then
    rm -rf @STATE_DIR@
fi
exit 0
"#;

pub(super) fn render_script(script: &str) -> String {
    script
        .replace("@BPFFS_DIR@", BPFFS_DIR)
        .replace("@STATE_DIR@", STATE_DIR)
}

pub(super) fn copyright() -> String {
    format!(
        "\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: sockstats
Source: {repository}

Files: *
Copyright: the sockstats developers
License: {license}
 sockstats is dual-licensed: MIT or Apache-2.0, at your option. The Apache
 License 2.0 is in /usr/share/common-licenses/Apache-2.0; the MIT license:
 .
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the \"Software\"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all
 copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
 SOFTWARE.
",
        repository = env!("CARGO_PKG_REPOSITORY"),
        license = env!("CARGO_PKG_LICENSE"),
    )
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn control_file_has_every_required_field() {
        let control = render_control(&Control {
            version: "0.1.0",
            arch: "amd64",
            installed_size_kib: 12_345,
            depends: "libc6 (>= 2.34), libgcc-s1",
            maintainer: "A Person <a@example.org>",
        });
        for line in [
            "Package: sockstats\n",
            "Version: 0.1.0\n",
            "Architecture: amd64\n",
            "Maintainer: A Person <a@example.org>\n",
            "Installed-Size: 12345\n",
            "Depends: libc6 (>= 2.34), libgcc-s1\n",
            "Description: exact per-label",
        ] {
            assert!(control.contains(line), "{line:?} missing from:\n{control}");
        }
        assert!(control.ends_with('\n') && !control.contains("\n\n"));
        // Every continuation line of the description starts with a space.
        let description = control.split_once("Description:").unwrap().1;
        for line in description.lines().skip(1) {
            assert!(line.starts_with(' '), "{line:?}");
        }
    }

    #[test]
    fn glibc_requirement_is_the_newest_symbol_version() {
        let binary = b"\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_PRIVATE\0GLIBC_2.17\0GLIBC_2.3\0";
        assert_eq!(glibc_needed(binary).as_deref(), Some("2.34"));
        assert_eq!(glibc_needed(b"no versions"), None);
        assert_eq!(
            depends(&[b"GLIBC_2.28".to_vec(), b"GLIBC_2.9 GLIBC_2.33".to_vec()]),
            "libc6 (>= 2.33), libgcc-s1"
        );
        assert_eq!(depends(&[Vec::new()]), "libc6, libgcc-s1");
    }

    #[test]
    fn maintainer_scripts_start_nothing_and_parse() {
        for script in [POSTINST, PRERM, POSTRM] {
            let script = render_script(script);
            assert!(!script.contains('@'), "{script}");
            // The commands, not the messages that tell the user what to run.
            let commands: Vec<&str> = script
                .lines()
                .filter(|line| !line.trim_start().starts_with(['#', '|']))
                .filter(|line| !line.trim_start().starts_with("echo"))
                .collect();
            for forbidden in ["systemctl start", "systemctl enable", "invoke start"] {
                assert!(
                    !commands.iter().any(|line| line.contains(forbidden)),
                    "{forbidden} in:\n{script}"
                );
            }
            let status = Command::new("sh")
                .args(["-n", "-c", &script])
                .status()
                .expect("sh runs");
            assert!(status.success(), "sh -n rejects:\n{script}");
        }
        assert!(render_script(PRERM)
            .contains("sockstatsd --uninstall --bpffs-dir /sys/fs/bpf/sockstats"));
        assert!(render_script(POSTRM).contains("rm -rf /var/lib/sockstats"));
    }
}
