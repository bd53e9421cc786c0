//! `sockstats watch`: a live view of per-label (and per-interface) rates and totals.
//!
//! On a terminal: a full-screen view redrawn every interval, left with q, Esc or Ctrl-C (the
//! terminal is restored however it ends). Otherwise (a pipe, a file): one plain block of lines
//! per interval, so it can be logged or grepped.
use std::{
    collections::BTreeMap,
    io::{self, IsTerminal as _, Write as _},
    time::{Duration, Instant},
};

use crossterm::{
    cursor,
    event::{self, Event, KeyCode, KeyEventKind, KeyModifiers},
    execute, terminal,
};
use sockstats_common::client::{Client, ClientError};

use super::format::{human_bytes, table};

/// What one refresh shows: (label, interface or "") → (tx, rx) payload bytes.
type Sample = BTreeMap<(String, String), (u64, u64)>;

/// Options of `sockstats watch`.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    pub interval: Duration,
    pub interfaces: bool,
    pub exact: bool,
    /// Stop after this many refreshes (`None`: until q / Ctrl-C / end of input).
    pub count: Option<u64>,
}

fn sample(client: &mut Client, interfaces: bool) -> Result<Sample, ClientError> {
    let mut sample = Sample::new();
    if interfaces {
        for (label, stats) in client.get_interfaces()?.stats {
            for (interface, tx) in &stats.tx_bytes_by_interface {
                let rx = stats
                    .rx_bytes_by_interface
                    .get(interface)
                    .copied()
                    .unwrap_or(0);
                sample.insert((label.clone(), interface.clone()), (*tx, rx));
            }
        }
    } else {
        for (label, counts) in client.get()?.stats {
            sample.insert((label, String::new()), (counts.tx_bytes, counts.rx_bytes));
        }
    }
    Ok(sample)
}

/// Rows sorted by current rate, then total: label, [interface], tx/s, rx/s, tx, rx.
fn render(
    now: &Sample,
    before: Option<&Sample>,
    elapsed: Duration,
    options: WatchOptions,
) -> String {
    let rate = |now: u64, then: u64| -> u64 {
        let seconds = elapsed.as_secs_f64().max(1e-3);
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "a displayed rate"
        )]
        let per_second = (now.saturating_sub(then) as f64 / seconds) as u64;
        per_second
    };
    let mut rows: Vec<(u64, u64, Vec<String>)> = now
        .iter()
        .map(|((label, interface), (tx, rx))| {
            let (tx_before, rx_before) = before
                .and_then(|b| b.get(&(label.clone(), interface.clone())))
                .copied()
                .unwrap_or(if before.is_some() { (0, 0) } else { (*tx, *rx) });
            let (tx_rate, rx_rate) = (rate(*tx, tx_before), rate(*rx, rx_before));
            let cell = |bytes: u64| {
                if options.exact {
                    bytes.to_string()
                } else {
                    human_bytes(bytes)
                }
            };
            let mut row = vec![label.clone()];
            if options.interfaces {
                row.push(interface.clone());
            }
            row.extend([
                format!("{}/s", cell(tx_rate)),
                format!("{}/s", cell(rx_rate)),
                cell(*tx),
                cell(*rx),
            ]);
            (tx_rate + rx_rate, tx + rx, row)
        })
        .collect();
    rows.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(b.1.cmp(&a.1))
            .then_with(|| a.2.cmp(&b.2))
    });
    let rows: Vec<Vec<String>> = rows.into_iter().map(|(_, _, row)| row).collect();
    let mut header = vec!["LABEL"];
    if options.interfaces {
        header.push("INTERFACE");
    }
    header.extend(["TX RATE", "RX RATE", "TX", "RX"]);
    table(&header, if options.interfaces { 2 } else { 1 }, &rows)
}

/// Runs the view until it is left (or `count` refreshes are done).
pub fn watch(client: &mut Client, options: WatchOptions) -> Result<(), ClientError> {
    if io::stdout().is_terminal() {
        let _screen = Screen::enter()?;
        watch_loop(
            client,
            options,
            true,
            |text| {
                let mut out = io::stdout();
                execute!(
                    out,
                    cursor::MoveTo(0, 0),
                    terminal::Clear(terminal::ClearType::All)
                )?;
                // Raw mode: lines need explicit carriage returns.
                write!(out, "{}", text.replace('\n', "\r\n"))?;
                out.flush()
            },
            wait_for_quit,
        )
    } else {
        watch_loop(
            client,
            options,
            false,
            |text| {
                let mut out = io::stdout();
                write!(out, "{text}")?;
                out.flush()
            },
            |interval| {
                std::thread::sleep(interval);
                Ok(false)
            },
        )
    }
}

fn watch_loop(
    client: &mut Client,
    options: WatchOptions,
    interactive: bool,
    mut show: impl FnMut(&str) -> io::Result<()>,
    mut wait: impl FnMut(Duration) -> io::Result<bool>,
) -> Result<(), ClientError> {
    let mut before: Option<(Sample, Instant)> = None;
    let mut refreshes = 0;
    loop {
        let now = sample(client, options.interfaces)?;
        let taken = Instant::now();
        let elapsed = before
            .as_ref()
            .map_or(options.interval, |(_, at)| taken - *at);
        let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        let text = format!(
            "sockstats watch — {time}, every {:.1} s{}\n{}",
            options.interval.as_secs_f64(),
            if interactive { " (q to quit)" } else { "" },
            render(&now, before.as_ref().map(|(s, _)| s), elapsed, options)
        );
        show(&text)?;
        refreshes += 1;
        if options.count.is_some_and(|count| refreshes >= count) {
            return Ok(());
        }
        before = Some((now, taken));
        if wait(options.interval)? {
            return Ok(());
        }
    }
}

/// Waits up to `interval` for q, Esc or Ctrl-C; true when one came.
fn wait_for_quit(interval: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + interval;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !event::poll(left)? {
            return Ok(false);
        }
        if let Event::Key(key) = event::read()? {
            let ctrl_c =
                key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
            if key.kind == KeyEventKind::Press
                && (ctrl_c || matches!(key.code, KeyCode::Char('q') | KeyCode::Esc))
            {
                return Ok(true);
            }
        }
    }
}

/// The terminal in raw mode on the alternate screen, restored on drop (also on errors).
struct Screen;

impl Screen {
    fn enter() -> io::Result<Self> {
        terminal::enable_raw_mode()?;
        let screen = Self;
        execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = execute!(io::stdout(), cursor::Show, terminal::LeaveAlternateScreen);
        let _ = terminal::disable_raw_mode();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_the_previous_sample() {
        let options = WatchOptions {
            interval: Duration::from_secs(2),
            interfaces: false,
            exact: true,
            count: None,
        };
        let before = Sample::from([
            (("a".to_owned(), String::new()), (100, 0)),
            (("b".to_owned(), String::new()), (5, 5)),
        ]);
        let now = Sample::from([
            (("a".to_owned(), String::new()), (300, 50)),
            (("b".to_owned(), String::new()), (5, 5)),
        ]);
        let text = render(&now, Some(&before), Duration::from_secs(2), options);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["LABEL", "TX", "RATE", "RX", "RATE", "TX", "RX"]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["a", "100/s", "25/s", "300", "50"]
        );
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["b", "0/s", "0/s", "5", "5"]
        );
    }
}
