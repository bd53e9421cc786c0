//! `sockstats watch`: a live view of per-label (and per-interface) rates and totals.
//!
//! On a terminal: a full-screen [`ratatui`] view redrawn every interval: a table of the rows,
//! sortable (`s` cycles the column, `r` reverses), and sparklines of the selected row's tx and
//! rx rates (`↑`/`↓` select); left with q, Esc or Ctrl-C (the terminal is restored however it
//! ends, a panic too). Otherwise (a pipe, a file): one plain block of lines per interval, so it
//! can be logged or grepped.
use std::{
    collections::BTreeMap,
    io::{self, IsTerminal as _, Write as _},
    time::{Duration, Instant},
};

use crossterm::{
    cursor,
    event::{self, Event},
    execute, terminal,
};
use ratatui::{
    backend::{Backend, CrosstermBackend},
    layout::Rect,
    Terminal, TerminalOptions, Viewport,
};
use sockstats_common::client::{Client, ClientError};

use super::format::{human_bytes, table};

mod view;

use view::{Action, View};

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

/// One row of the view: a label (and interface, or "") with its rates (bytes/s) and totals.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    label: String,
    interface: String,
    tx_rate: u64,
    rx_rate: u64,
    tx: u64,
    rx: u64,
}

impl Row {
    fn key(&self) -> (String, String) {
        (self.label.clone(), self.interface.clone())
    }
}

/// Bytes per second from `then` to `now` over `elapsed` (counters only grow; a reset counts 0).
fn rate(now: u64, then: u64, elapsed: Duration) -> u64 {
    let seconds = elapsed.as_secs_f64().max(1e-3);
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a displayed rate"
    )]
    let per_second = (now.saturating_sub(then) as f64 / seconds) as u64;
    per_second
}

/// The rows of `now`, rates against `before` (none yet: all 0; a row new since: from 0).
fn rows(now: &Sample, before: Option<&Sample>, elapsed: Duration) -> Vec<Row> {
    now.iter()
        .map(|((label, interface), (tx, rx))| {
            let (tx_before, rx_before) = before
                .and_then(|b| b.get(&(label.clone(), interface.clone())))
                .copied()
                .unwrap_or(if before.is_some() { (0, 0) } else { (*tx, *rx) });
            Row {
                label: label.clone(),
                interface: interface.clone(),
                tx_rate: rate(*tx, tx_before, elapsed),
                rx_rate: rate(*rx, rx_before, elapsed),
                tx: *tx,
                rx: *rx,
            }
        })
        .collect()
}

/// What the view's table is sorted by (`s` cycles through them in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    /// tx + rx rate, then tx + rx total: the plain output's order.
    Rate,
    TxRate,
    RxRate,
    Tx,
    Rx,
    Label,
}

impl SortKey {
    const ALL: [Self; 6] = [
        Self::Rate,
        Self::TxRate,
        Self::RxRate,
        Self::Tx,
        Self::Rx,
        Self::Label,
    ];

    fn next(self) -> Self {
        let index = Self::ALL.iter().position(|k| *k == self).unwrap_or(0);
        Self::ALL[(index + 1) % Self::ALL.len()]
    }

    fn name(self) -> &'static str {
        match self {
            Self::Rate => "rate",
            Self::TxRate => "tx rate",
            Self::RxRate => "rx rate",
            Self::Tx => "tx",
            Self::Rx => "rx",
            Self::Label => "label",
        }
    }
}

/// Sorts largest first by `key` (a label A to Z), ties by label and interface; `reverse`
/// turns the whole order round.
fn sort_rows(rows: &mut [Row], key: SortKey, reverse: bool) {
    rows.sort_by(|a, b| {
        let by_key = match key {
            SortKey::Rate => (b.tx_rate + b.rx_rate)
                .cmp(&(a.tx_rate + a.rx_rate))
                .then((b.tx + b.rx).cmp(&(a.tx + a.rx))),
            SortKey::TxRate => b.tx_rate.cmp(&a.tx_rate),
            SortKey::RxRate => b.rx_rate.cmp(&a.rx_rate),
            SortKey::Tx => b.tx.cmp(&a.tx),
            SortKey::Rx => b.rx.cmp(&a.rx),
            SortKey::Label => std::cmp::Ordering::Equal,
        };
        let order = by_key
            .then_with(|| a.label.cmp(&b.label))
            .then_with(|| a.interface.cmp(&b.interface));
        if reverse {
            order.reverse()
        } else {
            order
        }
    });
}

/// The plain block: rows sorted by current rate, then total: label, [interface], tx/s, rx/s,
/// tx, rx.
fn render(
    now: &Sample,
    before: Option<&Sample>,
    elapsed: Duration,
    options: WatchOptions,
) -> String {
    let mut sorted = rows(now, before, elapsed);
    sort_rows(&mut sorted, SortKey::Rate, false);
    let cell = |bytes: u64| {
        if options.exact {
            bytes.to_string()
        } else {
            human_bytes(bytes)
        }
    };
    let rows: Vec<Vec<String>> = sorted
        .into_iter()
        .map(|row| {
            let mut cells = vec![row.label];
            if options.interfaces {
                cells.push(row.interface);
            }
            cells.extend([
                format!("{}/s", cell(row.tx_rate)),
                format!("{}/s", cell(row.rx_rate)),
                cell(row.tx),
                cell(row.rx),
            ]);
            cells
        })
        .collect();
    let mut header = vec!["LABEL"];
    if options.interfaces {
        header.push("INTERFACE");
    }
    header.extend(["TX RATE", "RX RATE", "TX", "RX"]);
    table(&header, if options.interfaces { 2 } else { 1 }, &rows)
}

/// Runs the view until it is left (or `count` refreshes are done): full screen on a terminal,
/// plain blocks otherwise.
pub fn watch(client: &mut Client, options: WatchOptions) -> Result<(), ClientError> {
    if io::stdout().is_terminal() {
        watch_terminal(client, options)
    } else {
        watch_plain(client, options)
    }
}

/// The header line of a refresh.
fn title(options: WatchOptions, interactive: bool) -> String {
    let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    format!(
        "sockstats watch — {time}, every {:.1} s{}",
        options.interval.as_secs_f64(),
        if interactive { " (q to quit)" } else { "" },
    )
}

/// Successive samples of the daemon's totals, each seen beside the one before it.
struct Samples {
    options: WatchOptions,
    before: Option<(Sample, Instant)>,
    taken: u64,
}

impl Samples {
    fn new(options: WatchOptions) -> Self {
        Self {
            options,
            before: None,
            taken: 0,
        }
    }

    /// Takes a sample and gives `use_it` it, the one before (none at first) and the time
    /// between them (the interval at first).
    fn next<T>(
        &mut self,
        client: &mut Client,
        use_it: impl FnOnce(&Sample, Option<&Sample>, Duration) -> T,
    ) -> Result<T, ClientError> {
        let now = sample(client, self.options.interfaces)?;
        let taken = Instant::now();
        let elapsed = self
            .before
            .as_ref()
            .map_or(self.options.interval, |(_, at)| taken - *at);
        let used = use_it(&now, self.before.as_ref().map(|(s, _)| s), elapsed);
        self.before = Some((now, taken));
        self.taken += 1;
        Ok(used)
    }

    /// Has `--count` been reached?
    fn done(&self) -> bool {
        self.options.count.is_some_and(|count| self.taken >= count)
    }
}

fn watch_plain(client: &mut Client, options: WatchOptions) -> Result<(), ClientError> {
    let mut samples = Samples::new(options);
    loop {
        let text = samples.next(client, |now, before, elapsed| {
            format!(
                "{}\n{}",
                title(options, false),
                render(now, before, elapsed, options)
            )
        })?;
        let mut out = io::stdout();
        write!(out, "{text}")?;
        out.flush()?;
        if samples.done() {
            return Ok(());
        }
        std::thread::sleep(options.interval);
    }
}

fn watch_terminal(client: &mut Client, options: WatchOptions) -> Result<(), ClientError> {
    let _screen = Screen::enter()?;
    let backend = CrosstermBackend::new(io::stdout());
    // A terminal that reports no size (a pty nobody sized) still gets a screen to draw on.
    let viewport = match terminal::size() {
        Ok((width, height)) if width > 0 && height > 0 => Viewport::Fullscreen,
        _ => Viewport::Fixed(Rect::new(0, 0, 100, 30)),
    };
    let mut terminal = Terminal::with_options(backend, TerminalOptions { viewport })?;
    run_view(client, options, &mut terminal, |timeout| {
        if event::poll(timeout)? {
            event::read().map(Some)
        } else {
            Ok(None)
        }
    })
}

/// The terminal view's loop: sample, draw, then wait out the interval while handling keys
/// (`next_event` waits up to its timeout for one).
fn run_view<B: Backend>(
    client: &mut Client,
    options: WatchOptions,
    terminal: &mut Terminal<B>,
    mut next_event: impl FnMut(Duration) -> io::Result<Option<Event>>,
) -> Result<(), ClientError> {
    let mut view = View::new(options);
    let mut samples = Samples::new(options);
    loop {
        let current = samples.next(client, rows)?;
        view.history.record(&current);
        let heading = title(options, true);
        terminal.draw(|frame| view.draw(frame, &current, &heading))?;
        if samples.done() {
            return Ok(());
        }
        let deadline = Instant::now() + options.interval;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let redraw = match next_event(left)? {
                None => break,
                Some(Event::Key(key)) => match view.on_key(key, current.len()) {
                    Action::Quit => return Ok(()),
                    Action::Redraw => true,
                    Action::Nothing => false,
                },
                Some(Event::Resize(..)) => {
                    terminal.autoresize()?;
                    true
                }
                Some(_) => false,
            };
            if redraw {
                terminal.draw(|frame| view.draw(frame, &current, &heading))?;
            }
        }
    }
}

/// Leaves the alternate screen and raw mode (harmless when already left).
fn restore_terminal() {
    let _ = execute!(io::stdout(), cursor::Show, terminal::LeaveAlternateScreen);
    let _ = terminal::disable_raw_mode();
}

/// The terminal in raw mode on the alternate screen, restored on drop (also on errors) and
/// before a panic's message is printed.
struct Screen;

impl Screen {
    fn enter() -> io::Result<Self> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
        terminal::enable_raw_mode()?;
        let screen = Self;
        execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore_terminal();
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

    pub(super) fn row(label: &str, tx_rate: u64, rx_rate: u64, tx: u64, rx: u64) -> Row {
        Row {
            label: label.to_owned(),
            interface: String::new(),
            tx_rate,
            rx_rate,
            tx,
            rx,
        }
    }

    fn labels(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|r| r.label.as_str()).collect()
    }

    #[test]
    fn rows_have_rates_against_the_previous_sample_and_zero_at_first() {
        let before = Sample::from([(("a".to_owned(), String::new()), (100, 0))]);
        let now = Sample::from([
            (("a".to_owned(), String::new()), (300, 50)),
            (("new".to_owned(), String::new()), (10, 0)),
        ]);
        let rows = rows(&now, Some(&before), Duration::from_secs(2));
        assert_eq!(rows[0], row("a", 100, 25, 300, 50));
        assert_eq!(rows[1], row("new", 5, 0, 10, 0), "a new row counts from 0");
        let first = super::rows(&now, None, Duration::from_secs(2));
        assert!(first.iter().all(|r| r.tx_rate == 0 && r.rx_rate == 0));
        assert_eq!(rate(5, 10, Duration::from_secs(1)), 0, "a reset is no rate");
    }

    #[test]
    fn sort_keys_cycle_and_reverse() {
        let mut key = SortKey::Rate;
        let mut seen = vec![key];
        for _ in 1..SortKey::ALL.len() {
            key = key.next();
            seen.push(key);
        }
        assert_eq!(seen, SortKey::ALL);
        assert_eq!(key.next(), SortKey::Rate);

        let mut rows = vec![
            row("b", 10, 0, 1, 1000),
            row("a", 0, 20, 500, 0),
            row("c", 0, 0, 9999, 9999),
        ];
        sort_rows(&mut rows, SortKey::Rate, false);
        assert_eq!(labels(&rows), ["a", "b", "c"]);
        sort_rows(&mut rows, SortKey::TxRate, false);
        assert_eq!(labels(&rows), ["b", "a", "c"]);
        sort_rows(&mut rows, SortKey::Tx, false);
        assert_eq!(labels(&rows), ["c", "a", "b"]);
        sort_rows(&mut rows, SortKey::Rx, true);
        assert_eq!(labels(&rows), ["a", "b", "c"]);
        sort_rows(&mut rows, SortKey::Label, false);
        assert_eq!(labels(&rows), ["a", "b", "c"]);
        sort_rows(&mut rows, SortKey::Label, true);
        assert_eq!(labels(&rows), ["c", "b", "a"]);
    }
}
