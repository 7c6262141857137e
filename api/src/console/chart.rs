//! Small bar charts drawn as inline SVG on the server: no script, no chart library, and a
//! text alternative for screen readers (the `aria-label` and a `<title>` per bar).

use std::fmt::Write;

/// One bar: its label (shown under the first, middle and last bars) and value.
pub struct Bar {
    pub label: String,
    pub value: f64,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG bar chart, `description` read out by screen readers. Safe to embed unescaped:
/// every text in it is escaped here.
pub fn bars(description: &str, bars: &[Bar]) -> String {
    // Scaled to the box's width with its proportions kept, so text is never stretched.
    const W: f64 = 1000.0;
    const H: f64 = 170.0;
    const AXIS: f64 = 18.0;
    let max = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{}">"#,
        escape(description)
    );
    if bars.is_empty() || max <= 0.0 {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle" class="chart-empty">No data yet</text></svg>"#,
            W / 2.0,
            H / 2.0
        );
        return svg;
    }
    let slot = W / bars.len() as f64;
    // A few bars stay bars, not slabs.
    let width = (slot * 0.8).clamp(1.0, 48.0);
    for (i, bar) in bars.iter().enumerate() {
        let h = (bar.value / max) * (H - AXIS - 4.0);
        let x = i as f64 * slot + (slot - width) / 2.0;
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{:.1}" width="{width:.1}" height="{h:.1}"><title>{}: {}</title></rect>"#,
            H - AXIS - h,
            escape(&bar.label),
            bar.value
        );
    }
    for i in [0, bars.len() / 2, bars.len() - 1] {
        let anchor = if i == 0 {
            "start"
        } else if i == bars.len() - 1 {
            "end"
        } else {
            "middle"
        };
        let x = if i == 0 {
            0.0
        } else if i == bars.len() - 1 {
            W
        } else {
            i as f64 * slot + slot / 2.0
        };
        let _ = write!(
            svg,
            r#"<text x="{x:.1}" y="{}" text-anchor="{anchor}" class="chart-label">{}</text>"#,
            H - 4.0,
            escape(&bars[i].label)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_labels_and_draws_one_rect_per_bar() {
        let svg = bars(
            "Jobs <per> minute",
            &[
                Bar {
                    label: "<a>".into(),
                    value: 1.0,
                },
                Bar {
                    label: "b".into(),
                    value: 3.0,
                },
            ],
        );
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("Jobs &lt;per&gt; minute"));
        assert!(!svg.contains("<a>"));
    }

    #[test]
    fn empty_series_says_so() {
        assert!(bars("x", &[]).contains("No data yet"));
    }
}
