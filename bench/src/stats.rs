//! Medians over runs, their spread, and latency percentiles.

/// One figure measured once per run.
#[derive(Debug, Clone, Default)]
pub struct Runs(pub Vec<f64>);

impl Runs {
    pub fn push(&mut self, v: f64) {
        self.0.push(v);
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    pub fn median(&self) -> f64 {
        let v = self.sorted();
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    /// "median (min–max)" with `decimals` digits; one run shows just the value.
    pub fn show(&self, decimals: usize) -> String {
        let v = self.sorted();
        match v.as_slice() {
            [] => "–".into(),
            [one] => format!("{one:.decimals$}"),
            [lo, .., hi] => format!(
                "{:.decimals$} ({lo:.decimals$}–{hi:.decimals$})",
                self.median()
            ),
        }
    }
}

/// The `q` quantile (0..=1) of an unsorted sample, nearest-rank.
pub fn percentile(sample: &[f64], q: f64) -> f64 {
    if sample.is_empty() {
        return f64::NAN;
    }
    let mut v = sample.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread() {
        let r = Runs(vec![3.0, 1.0, 2.0]);
        assert_eq!(r.median(), 2.0);
        assert_eq!(r.show(1), "2.0 (1.0–3.0)");
        assert_eq!(Runs(vec![1.0, 4.0]).median(), 2.5);
        assert_eq!(Runs(vec![7.0]).show(0), "7");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 0.5), 50.0);
        assert_eq!(percentile(&s, 0.99), 99.0);
        assert_eq!(percentile(&s, 1.0), 100.0);
    }
}
