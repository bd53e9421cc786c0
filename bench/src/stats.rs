//! Median and spread over rounds.
use serde::Serialize;

/// The median of a measurement over rounds, its extremes and every sample.
#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub samples: Vec<f64>,
}

impl Spread {
    /// `None` for no samples.
    #[must_use]
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[middle]
        } else {
            f64::midpoint(sorted[middle - 1], sorted[middle])
        };
        Some(Self {
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            samples: samples.to_vec(),
        })
    }

    /// `median [min–max]` with `digits` decimals, scaled by `scale`.
    #[must_use]
    pub fn show(&self, scale: f64, digits: usize) -> String {
        format!(
            "{:.digits$} [{:.digits$}–{:.digits$}]",
            self.median * scale,
            self.min * scale,
            self.max * scale
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let odd = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert!((odd.median - 2.0).abs() < f64::EPSILON);
        assert!((odd.min - 1.0).abs() < f64::EPSILON);
        assert!((odd.max - 3.0).abs() < f64::EPSILON);
        let even = Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert!((even.median - 2.5).abs() < f64::EPSILON);
        assert!(Spread::of(&[]).is_none());
    }
}
