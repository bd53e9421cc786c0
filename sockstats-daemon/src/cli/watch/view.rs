//! The terminal view of `sockstats watch`: its state (sort, selection, rate history), its keys
//! and how it draws a frame with [`ratatui`].
use std::collections::{BTreeMap, VecDeque};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::{
    layout::{Constraint, Layout, Rect},
    style::{Modifier, Style},
    text::Line,
    widgets::{Block, Cell, Paragraph, Row as TableRow, Sparkline, Table, TableState},
    Frame,
};

use super::{human_bytes, sort_rows, Row, SortKey, WatchOptions};

/// The last `capacity` (tx, rx) rates of each row still shown.
#[derive(Debug)]
pub(super) struct History {
    capacity: usize,
    rates: BTreeMap<(String, String), VecDeque<(u64, u64)>>,
}

impl History {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            rates: BTreeMap::new(),
        }
    }

    /// Adds one refresh; rows gone from it are forgotten.
    pub(super) fn record(&mut self, rows: &[Row]) {
        self.rates.retain(|key, _| {
            rows.iter()
                .any(|row| row.label == key.0 && row.interface == key.1)
        });
        for row in rows {
            let rates = self.rates.entry(row.key()).or_default();
            rates.push_back((row.tx_rate, row.rx_rate));
            while rates.len() > self.capacity {
                rates.pop_front();
            }
        }
    }

    /// The tx rates (`rx` false) or rx rates of `key`, oldest first.
    fn series(&self, key: &(String, String), rx: bool) -> Vec<u64> {
        self.rates.get(key).map_or_else(Vec::new, |rates| {
            rates
                .iter()
                .map(|(tx_rate, rx_rate)| if rx { *rx_rate } else { *tx_rate })
                .collect()
        })
    }
}

/// What a key press asks of the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Quit,
    Redraw,
    Nothing,
}

/// The state of the terminal view: sort, selection, rate history.
#[derive(Debug)]
pub(super) struct View {
    options: WatchOptions,
    sort: SortKey,
    reverse: bool,
    /// Index of the selected row in the sorted table.
    selected: usize,
    pub(super) history: History,
}

impl View {
    /// Rates kept per row: enough for a wide sparkline.
    const HISTORY: usize = 240;

    pub(super) fn new(options: WatchOptions) -> Self {
        Self {
            options,
            sort: SortKey::Rate,
            reverse: false,
            selected: 0,
            history: History::new(Self::HISTORY),
        }
    }

    /// q, Esc, Ctrl-C quit; s cycles the sort column, r reverses; ↑/k ↓/j Home End select.
    pub(super) fn on_key(&mut self, key: KeyEvent, row_count: usize) -> Action {
        if key.kind != KeyEventKind::Press {
            return Action::Nothing;
        }
        let last = row_count.saturating_sub(1);
        match key.code {
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Action::Quit,
            KeyCode::Char('q') | KeyCode::Esc => Action::Quit,
            KeyCode::Char('s') => {
                self.sort = self.sort.next();
                Action::Redraw
            }
            KeyCode::Char('r') => {
                self.reverse = !self.reverse;
                Action::Redraw
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.selected = self.selected.saturating_sub(1).min(last);
                Action::Redraw
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(last);
                Action::Redraw
            }
            KeyCode::Home => {
                self.selected = 0;
                Action::Redraw
            }
            KeyCode::End => {
                self.selected = last;
                Action::Redraw
            }
            _ => Action::Nothing,
        }
    }

    fn cell(&self, bytes: u64) -> String {
        if self.options.exact {
            bytes.to_string()
        } else {
            human_bytes(bytes)
        }
    }

    /// Draws `rows` (in any order) under `title`.
    pub(super) fn draw(&self, frame: &mut Frame, rows: &[Row], title: &str) {
        let mut rows = rows.to_vec();
        sort_rows(&mut rows, self.sort, self.reverse);
        let selected = self.selected.min(rows.len().saturating_sub(1));
        let [top, middle, bottom] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(7),
        ])
        .areas(frame.area());
        frame.render_widget(Paragraph::new(title), top);

        let table = self.table(&rows);
        let mut state = TableState::default().with_selected((!rows.is_empty()).then_some(selected));
        frame.render_stateful_widget(table, middle, &mut state);

        let [left, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(bottom);
        if let Some(row) = rows.get(selected) {
            let name = if row.interface.is_empty() {
                row.label.clone()
            } else {
                format!("{} on {}", row.label, row.interface)
            };
            for (area, rx, now) in [(left, false, row.tx_rate), (right, true, row.rx_rate)] {
                self.sparkline(
                    frame,
                    area,
                    &row.key(),
                    rx,
                    &format!(
                        " {name} {} {}/s ",
                        if rx { "rx" } else { "tx" },
                        self.cell(now)
                    ),
                );
            }
        }
    }

    /// The sorted rows as a table, the sort column marked.
    fn table(&self, rows: &[Row]) -> Table<'static> {
        let arrow = if self.reverse { " ▲" } else { " ▼" };
        let mut columns: Vec<(&str, Option<SortKey>)> = vec![("LABEL", Some(SortKey::Label))];
        if self.options.interfaces {
            columns.push(("INTERFACE", None));
        }
        columns.extend([
            ("TX RATE", Some(SortKey::TxRate)),
            ("RX RATE", Some(SortKey::RxRate)),
            ("TX", Some(SortKey::Tx)),
            ("RX", Some(SortKey::Rx)),
        ]);
        let text_columns = if self.options.interfaces { 2 } else { 1 };
        let header = TableRow::new(columns.iter().enumerate().map(|(index, (name, key))| {
            let marked = if *key == Some(self.sort)
                || (self.sort == SortKey::Rate
                    && matches!(key, Some(SortKey::TxRate | SortKey::RxRate)))
            {
                format!("{name}{arrow}")
            } else {
                (*name).to_owned()
            };
            let line = Line::from(marked);
            Cell::from(if index < text_columns {
                line
            } else {
                line.right_aligned()
            })
        }))
        .style(Style::new().add_modifier(Modifier::BOLD));
        let body = rows.iter().map(|row| {
            let mut cells = vec![Cell::from(row.label.clone())];
            if self.options.interfaces {
                cells.push(Cell::from(row.interface.clone()));
            }
            for text in [
                format!("{}/s", self.cell(row.tx_rate)),
                format!("{}/s", self.cell(row.rx_rate)),
                self.cell(row.tx),
                self.cell(row.rx),
            ] {
                cells.push(Cell::from(Line::from(text).right_aligned()));
            }
            TableRow::new(cells)
        });
        let label_width = rows
            .iter()
            .map(|row| row.label.chars().count())
            .max()
            .unwrap_or(0)
            .max(5);
        let mut widths = vec![Constraint::Length(
            u16::try_from(label_width).unwrap_or(u16::MAX),
        )];
        if self.options.interfaces {
            let width = rows
                .iter()
                .map(|row| row.interface.chars().count())
                .max()
                .unwrap_or(0)
                .max(9);
            widths.push(Constraint::Length(u16::try_from(width).unwrap_or(u16::MAX)));
        }
        widths.extend([Constraint::Length(13); 4]);
        Table::new(body, widths)
            .header(header)
            .column_spacing(2)
            .block(Block::bordered().title(format!(
                " sorted by {}{} (s: sort, r: reverse, ↑↓: select, q: quit) ",
                self.sort.name(),
                if self.reverse { ", reversed" } else { "" }
            )))
            .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    }

    /// The newest rates of `key` that fit in `area`, as a sparkline.
    fn sparkline(
        &self,
        frame: &mut Frame,
        area: Rect,
        key: &(String, String),
        rx: bool,
        title: &str,
    ) {
        let series = self.history.series(key, rx);
        let fit = usize::from(area.width.saturating_sub(2));
        let newest = &series[series.len().saturating_sub(fit)..];
        frame.render_widget(
            Sparkline::default()
                .block(Block::bordered().title(title.to_owned()))
                .data(newest),
            area,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ratatui::Terminal;

    use super::super::tests::row;
    use super::*;

    #[test]
    fn history_keeps_the_newest_rates_of_rows_still_shown() {
        let mut history = History::new(3);
        for n in 0..5 {
            history.record(&[row("a", n, n * 10, 0, 0), row("b", 1, 1, 0, 0)]);
        }
        let a = ("a".to_owned(), String::new());
        assert_eq!(history.series(&a, false), [2, 3, 4]);
        assert_eq!(history.series(&a, true), [20, 30, 40]);
        history.record(&[row("a", 7, 7, 0, 0)]);
        assert!(history
            .series(&("b".to_owned(), String::new()), false)
            .is_empty());
    }

    /// Every second, labels only, exact numbers, until quit.
    fn options() -> WatchOptions {
        WatchOptions {
            interval: Duration::from_secs(1),
            interfaces: false,
            exact: true,
            count: None,
        }
    }

    fn press(view: &mut View, code: KeyCode, rows: usize) -> Action {
        view.on_key(KeyEvent::new(code, KeyModifiers::NONE), rows)
    }

    #[test]
    fn keys_sort_select_and_quit() {
        let mut view = View::new(options());
        assert_eq!(press(&mut view, KeyCode::Char('s'), 2), Action::Redraw);
        assert_eq!(view.sort, SortKey::TxRate);
        press(&mut view, KeyCode::Char('r'), 2);
        assert!(view.reverse);
        press(&mut view, KeyCode::Down, 2);
        press(&mut view, KeyCode::Down, 2);
        assert_eq!(view.selected, 1, "the selection stops at the last row");
        press(&mut view, KeyCode::Up, 2);
        assert_eq!(view.selected, 0);
        assert_eq!(press(&mut view, KeyCode::Char('x'), 2), Action::Nothing);
        assert_eq!(press(&mut view, KeyCode::Char('q'), 2), Action::Quit);
        assert_eq!(press(&mut view, KeyCode::Esc, 2), Action::Quit);
        assert_eq!(
            view.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL), 2),
            Action::Quit
        );
    }

    fn screen(view: &View, rows: &[Row]) -> Vec<String> {
        let mut terminal =
            Terminal::new(ratatui::backend::TestBackend::new(100, 20)).expect("test terminal");
        terminal
            .draw(|frame| view.draw(frame, rows, "sockstats watch"))
            .expect("draw");
        let buffer = terminal.backend().buffer();
        (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
            })
            .collect()
    }

    #[test]
    fn the_view_shows_the_labels_sorted_and_the_selected_rows_sparklines() {
        let mut view = View::new(options());
        let rows = [row("slow", 1, 1, 90_000, 0), row("fast", 500, 70, 10, 20)];
        for _ in 0..3 {
            view.history.record(&rows);
        }
        let lines = screen(&view, &rows);
        let text = lines.join("\n");
        assert!(lines[0].starts_with("sockstats watch"), "{text}");
        let line_of = |lines: &[String], label: &str| {
            lines
                .iter()
                .position(|l| l.contains(&format!("│{label} ")))
                .unwrap_or_else(|| panic!("no row {label}: {}", lines.join("\n")))
        };
        assert!(line_of(&lines, "fast") < line_of(&lines, "slow"), "{text}");
        assert!(text.contains("TX RATE ▼"), "{text}");
        assert!(text.contains("500/s") && text.contains("90000"), "{text}");
        assert!(
            text.contains(" fast tx 500/s ") && text.contains(" fast rx 70/s "),
            "{text}"
        );

        // s s s s: sorted by tx total, "slow" first; r reverses.
        for _ in 0..3 {
            press(&mut view, KeyCode::Char('s'), 2);
        }
        assert_eq!(view.sort, SortKey::Tx);
        let lines = screen(&view, &rows);
        assert!(line_of(&lines, "slow") < line_of(&lines, "fast"));
        assert!(
            lines.join("\n").contains(" slow tx 1/s "),
            "the selection is the top row"
        );
        press(&mut view, KeyCode::Char('r'), 2);
        let lines = screen(&view, &rows);
        assert!(line_of(&lines, "fast") < line_of(&lines, "slow"));
        assert!(lines.join("\n").contains("sorted by tx, reversed"));
    }
}
