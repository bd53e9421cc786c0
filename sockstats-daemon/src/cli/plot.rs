//! `sockstats history --plot FILE.svg|FILE.png`: the buckets of a history reply as a stacked
//! area chart over time (plotters), the largest keys at the bottom, the rest as one
//! `(others)` band. Text is drawn with a TrueType font of the system (`ab_glyph`).
use std::{collections::BTreeMap, path::Path};

use plotters::{
    coord::Shift,
    prelude::*,
    style::{register_font, FontStyle},
};
use sockstats_common::protocol::{HistoryReply, Period};

use super::format::human_bytes;

/// Keys drawn as bands of their own; the others are summed into one.
const BANDS: usize = 8;

/// Where the chart's font is looked for (Debian's fonts-dejavu-core first).
const FONTS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Why the chart was not drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("--plot {0}: the file must end in .svg or .png")]
    Format(String),
    #[error("--plot: no recorded bytes in this window, nothing to draw")]
    Empty,
    #[error("--plot: no TrueType font for the chart's text (looked for {}); install one, e.g. `apt-get install fonts-dejavu-core`", FONTS.join(", "))]
    NoFont,
    #[error("--plot {path}: cannot draw the chart: {reason}")]
    Draw { path: String, reason: String },
}

fn register_system_font() -> Result<(), PlotError> {
    for path in FONTS {
        if let Ok(bytes) = std::fs::read(path) {
            // The registry keeps fonts for the process's life: the CLI draws one chart and exits.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return Ok(());
            }
        }
    }
    Err(PlotError::NoFont)
}

/// One band: its key and its bytes (tx + rx) per bucket start.
struct Band {
    key: String,
    bytes: BTreeMap<i64, f64>,
}

fn seconds(time: &str) -> i64 {
    humantime::parse_rfc3339(time)
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|since| i64::try_from(since.as_secs()).ok())
        .unwrap_or(0)
}

#[expect(clippy::cast_precision_loss, reason = "bytes as chart coordinates")]
fn bands(reply: &HistoryReply) -> Vec<Band> {
    let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
    for bucket in &reply.buckets {
        for (key, counts) in &bucket.stats {
            *totals.entry(key).or_default() += counts.tx_bytes + counts.rx_bytes;
        }
    }
    let mut order: Vec<(&str, i64)> = totals.into_iter().collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let named: Vec<&str> = order.iter().take(BANDS).map(|(key, _)| *key).collect();
    let mut bands: Vec<Band> = named
        .iter()
        .map(|key| Band {
            key: (*key).to_owned(),
            bytes: BTreeMap::new(),
        })
        .collect();
    let mut others = Band {
        key: "(others)".to_owned(),
        bytes: BTreeMap::new(),
    };
    for bucket in &reply.buckets {
        let start = seconds(&bucket.start);
        for (key, counts) in &bucket.stats {
            // A bucket below zero (a relabel moved bytes away) draws as nothing.
            let bytes = (counts.tx_bytes + counts.rx_bytes).max(0) as f64;
            let band = match named.iter().position(|named| named == key) {
                Some(index) => &mut bands[index],
                None => &mut others,
            };
            *band.bytes.entry(start).or_default() += bytes;
        }
    }
    if !others.bytes.is_empty() {
        bands.push(others);
    }
    bands
}

fn axis_time(period: Period, seconds: i64) -> String {
    let text = crate::history::rfc3339(seconds);
    match period {
        Period::FiveMinutes | Period::Hour => text.get(5..16).unwrap_or(&text).replace('T', " "),
        Period::Day | Period::Month => text.get(..10).unwrap_or(&text).to_owned(),
    }
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "chart coordinates back to bytes for labels"
)]
fn draw<B: DrawingBackend>(
    root: &DrawingArea<B, Shift>,
    reply: &HistoryReply,
    bands: &[Band],
) -> Result<(), DrawingAreaErrorKind<B::ErrorType>> {
    root.fill(&WHITE)?;
    let starts: Vec<i64> = reply.buckets.iter().map(|b| seconds(&b.start)).collect();
    let first = *starts.first().unwrap_or(&0);
    let last_end = reply.buckets.last().map_or(first + 1, |b| seconds(&b.end));
    let mut stacked: Vec<BTreeMap<i64, f64>> = Vec::new();
    let mut below: BTreeMap<i64, f64> = BTreeMap::new();
    for band in bands {
        let mut top = BTreeMap::new();
        for start in &starts {
            let value = below.get(start).copied().unwrap_or(0.0)
                + band.bytes.get(start).copied().unwrap_or(0.0);
            top.insert(*start, value);
        }
        below.clone_from(&top);
        stacked.push(top);
    }
    let highest = below.values().copied().fold(0.0, f64::max).max(1.0);
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("bytes per {} by {}", reply.period.name(), reply.by.name()),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(95)
        .build_cartesian_2d(first..last_end, 0.0..highest * 1.05)?;
    chart
        .configure_mesh()
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&|seconds| axis_time(reply.period, *seconds))
        .y_label_formatter(&|bytes| human_bytes(bytes.max(0.0) as u64))
        .draw()?;
    // The top of the stack first, so each lower band paints over the one above it.
    for (index, (band, top)) in bands.iter().zip(&stacked).enumerate().rev() {
        let colour = Palette99::pick(index).mix(0.85);
        let ends: BTreeMap<i64, i64> = reply
            .buckets
            .iter()
            .map(|b| (seconds(&b.start), seconds(&b.end)))
            .collect();
        let points: Vec<(i64, f64)> = top
            .iter()
            .flat_map(|(start, value)| [(*start, *value), (ends[start], *value)])
            .collect();
        chart
            .draw_series(AreaSeries::new(points, 0.0, colour.filled()))?
            .label(band.key.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()
}

/// Draws `reply` into `path` (`.svg` or `.png`, 1200 × 600).
pub fn plot(reply: &HistoryReply, path: &Path) -> Result<(), PlotError> {
    let shown = path.display().to_string();
    let extension = path
        .extension()
        .and_then(|extension| extension.to_str())
        .map(str::to_ascii_lowercase);
    if !matches!(extension.as_deref(), Some("svg" | "png")) {
        return Err(PlotError::Format(shown));
    }
    let bands = bands(reply);
    if bands.is_empty() {
        return Err(PlotError::Empty);
    }
    register_system_font()?;
    let failed = |reason: String| PlotError::Draw {
        path: shown.clone(),
        reason,
    };
    if extension.as_deref() == Some("svg") {
        let root = SVGBackend::new(path, (1200, 600)).into_drawing_area();
        draw(&root, reply, &bands).map_err(|error| failed(error.to_string()))
    } else {
        let root = BitMapBackend::new(path, (1200, 600)).into_drawing_area();
        draw(&root, reply, &bands).map_err(|error| failed(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use sockstats_common::protocol::{HistoryBucket, HistoryBy, HistoryCounts};

    use super::*;

    fn reply() -> HistoryReply {
        let bucket = |start: &str, end: &str, stats: &[(&str, i64)]| HistoryBucket {
            start: start.to_owned(),
            end: end.to_owned(),
            stats: stats
                .iter()
                .map(|(key, bytes)| {
                    (
                        (*key).to_owned(),
                        HistoryCounts {
                            tx_bytes: *bytes,
                            rx_bytes: 1,
                        },
                    )
                })
                .collect(),
        };
        HistoryReply {
            period: Period::Hour,
            by: HistoryBy::Label,
            buckets: vec![
                bucket(
                    "2026-12-02T13:00:00Z",
                    "2026-12-02T14:00:00Z",
                    &[("web", 5_000_000), ("dns", 20_000)],
                ),
                bucket(
                    "2026-12-02T14:00:00Z",
                    "2026-12-02T15:00:00Z",
                    &[("web", 3_000_000), ("backup", 9_000_000)],
                ),
            ],
            recorded_until: None,
        }
    }

    #[test]
    fn bands_are_the_largest_keys_first() {
        let bands = bands(&reply());
        let keys: Vec<&str> = bands.iter().map(|band| band.key.as_str()).collect();
        assert_eq!(keys, ["backup", "web", "dns"]);
        #[expect(clippy::cast_possible_truncation, reason = "whole bytes")]
        let web = bands[1].bytes.values().sum::<f64>() as i64;
        assert_eq!(web, 8_000_002);
    }

    #[test]
    fn draws_an_svg_with_every_band_and_refuses_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.svg");
        match plot(&reply(), &path) {
            // A machine without any of the fonts says so (and the CI installs one).
            Err(PlotError::NoFont) => assert!(FONTS.iter().all(|f| !Path::new(f).exists())),
            other => {
                other.unwrap();
                let svg = std::fs::read_to_string(&path).unwrap();
                assert!(svg.starts_with("<svg"), "{svg:.80}");
                for text in ["backup", "web", "dns", "bytes per hour by label"] {
                    assert!(svg.contains(text), "{text} missing");
                }
                let png = dir.path().join("chart.png");
                plot(&reply(), &png).unwrap();
                assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
            }
        }
        assert!(matches!(
            plot(&reply(), &dir.path().join("chart.pdf")),
            Err(PlotError::Format(_))
        ));
        let empty = HistoryReply::default();
        assert!(matches!(plot(&empty, &path), Err(PlotError::Empty)));
    }
}
