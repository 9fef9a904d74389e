//! `iamlet bench plot`: saved runs as percentile curves, in SVG written by hand.
//!
//! The x axis is in "nines" (`-log10(1 - p)`: 0 %, 90 %, 99 %, 99.9 % equally spaced), so the
//! tail gets as much room as the body; the y axis is latency on a log scale.

use std::fmt::Write as _;

use super::report::RunReport;

const WIDTH: f64 = 820.0;
const HEIGHT: f64 = 500.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
/// Distinguishable on white, and for the common colour-vision deficiencies (Okabe–Ito).
const COLOURS: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];

/// A percentile's position on the "nines" axis: 0 → 0, 90 → 1, 99 → 2, 99.9 → 3.
fn nines(percentile: f64) -> f64 {
    let tail = (1.0 - percentile / 100.0).max(1e-12);
    -tail.log10()
}

/// `text` with XML's special characters escaped, for text and attribute values.
fn escape(text: &str) -> String {
    crate::http::xml_escape(text).into_owned()
}

/// A percentile label of the nines axis (`99.9%`).
fn percentile_label(nines: u32) -> String {
    match nines {
        0 => "0%".into(),
        1 => "90%".into(),
        n => format!("99.{}%", "9".repeat(n as usize - 2)).replace(".%", "%"),
    }
}

/// A latency label (`100 µs`, `1 ms`, `10 s`).
fn latency_label(us: f64) -> String {
    if us >= 1e6 {
        format!("{} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{} ms", us / 1e3)
    } else {
        format!("{us} µs")
    }
}

/// The SVG of `runs`, one curve each, labelled with the run's label.
pub fn plot_svg(runs: &[RunReport]) -> String {
    let points = runs.iter().flat_map(|r| r.curve.iter());
    let (mut low, mut high) = (f64::MAX, f64::MIN);
    let mut right = 3.0f64;
    for p in points {
        let us = (p.latency_us.max(1)) as f64;
        low = low.min(us);
        high = high.max(us);
        right = right.max(nines(p.percentile).ceil());
    }
    if low > high {
        (low, high) = (1.0, 1000.0);
    }
    let right = right.min(6.0);
    let y_low = low.log10().floor();
    let y_high = high.log10().ceil().max(y_low + 1.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |nines: f64| LEFT + nines / right * plot_w;
    let y = |us: f64| TOP + (y_high - us.max(1.0).log10()) / (y_high - y_low) * plot_h;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">Latency by percentile (from the intended send time, open loop)</text>"#,
        WIDTH / 2.0
    );
    // Horizontal grid: every decade labelled, 2× and 5× faint.
    let mut decade = y_low;
    while decade <= y_high {
        let base = 10f64.powf(decade);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#bbbbbb"/>"##,
            WIDTH - RIGHT,
            y = y(base)
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y(base) + 4.0,
            escape(&latency_label(base))
        );
        for minor in [2.0, 5.0] {
            if decade < y_high {
                let _ = writeln!(
                    svg,
                    r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eeeeee"/>"##,
                    WIDTH - RIGHT,
                    y = y(base * minor)
                );
            }
        }
        decade += 1.0;
    }
    // Vertical grid at each nine.
    for n in 0..=right as u32 {
        let at = x(f64::from(n));
        let _ = writeln!(
            svg,
            r##"<line x1="{at:.1}" y1="{TOP}" x2="{at:.1}" y2="{:.1}" stroke="#bbbbbb"/>"##,
            HEIGHT - BOTTOM
        );
        let _ = writeln!(
            svg,
            r#"<text x="{at:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            HEIGHT - BOTTOM + 18.0,
            percentile_label(n)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 18.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">latency</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    let _ = writeln!(
        svg,
        r#"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#
    );
    for (n, (run, colour)) in runs.iter().zip(COLOURS.iter().cycle()).enumerate() {
        let points: Vec<String> = run
            .curve
            .iter()
            .filter(|p| nines(p.percentile) <= right)
            .map(|p| {
                format!(
                    "{:.1},{:.1}",
                    x(nines(p.percentile)),
                    y(p.latency_us as f64)
                )
            })
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        // The legend, top left, where the curves are lowest.
        let ly = TOP + 18.0 + n as f64 * 18.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="3"/>"#,
            LEFT + 12.0,
            LEFT + 36.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{} (p99 {} µs, max {} µs)</text>"#,
            LEFT + 42.0,
            ly + 4.0,
            escape(&run.settings.label),
            run.latency_us.p99,
            run.latency_us.max
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::super::engine::{LatencyRecorder, Measurement};
    use super::super::report::RunSettings;
    use super::*;

    fn run(label: &str, scale: u64) -> RunReport {
        let mut latency = LatencyRecorder::try_new().unwrap();
        for us in 1..=10_000 {
            latency.record(Duration::from_micros(50 + us * scale / 100));
        }
        let m = Measurement {
            latency,
            sent: 10_000,
            completed: 10_000,
            denied: 0,
            errors: BTreeMap::new(),
            late_starts: 0,
            elapsed: Duration::from_secs(1),
        };
        RunReport::new(
            RunSettings::one_second(label, 10_000.0),
            "t".into(),
            &m,
            None,
        )
    }

    /// Checks that every tag is closed in order and that no text holds a bare `<` or `&`.
    fn assert_well_formed(svg: &str) {
        let mut open: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let text = &rest[..start];
            assert!(
                !text.contains('>') && text.split('&').skip(1).all(|e| e.contains(';')),
                "bad text {text:?}"
            );
            let end = rest[start..].find('>').expect("an unclosed tag") + start;
            let tag = &rest[start + 1..end];
            assert!(!tag.contains('<'), "{tag}");
            assert_eq!(
                tag.matches('"').count() % 2,
                0,
                "unbalanced quotes in {tag}"
            );
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop().as_deref(), Some(name), "closing {name}");
            } else if !tag.ends_with('/') {
                open.push(tag.split_whitespace().next().unwrap().to_owned());
            }
            rest = &rest[end + 1..];
        }
        assert!(open.is_empty(), "unclosed {open:?}");
        assert!(rest.trim().is_empty());
    }

    #[test]
    fn one_curve_per_run_in_well_formed_svg() {
        let runs = [
            run("noop <floor> & co", 1),
            run("iamlet", 3),
            run("churn", 5),
        ];
        let svg = plot_svg(&runs);
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert_well_formed(&svg);
        assert!(svg.contains("noop &lt;floor&gt; &amp; co"));
        for label in ["0%", "90%", "99%", "99.9%", "99.99%"] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label}");
        }
        assert!(svg.contains(">100 µs</text>") && svg.contains(">1 ms</text>"));
    }

    #[test]
    fn slower_runs_are_drawn_higher() {
        let svg = plot_svg(&[run("fast", 1), run("slow", 10)]);
        // The last point of each polyline is its highest percentile: the slow run's must sit
        // higher on the page (a smaller y).
        let last_y = |n: usize| -> f64 {
            let line = svg
                .lines()
                .filter(|l| l.starts_with("<polyline"))
                .nth(n)
                .unwrap();
            let points = line
                .split("points=\"")
                .nth(1)
                .unwrap()
                .trim_end_matches("\"/>");
            points
                .rsplit(' ')
                .next()
                .unwrap()
                .split(',')
                .nth(1)
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(last_y(1) < last_y(0), "{} vs {}", last_y(1), last_y(0));
    }

    #[test]
    fn axis_labels() {
        assert_eq!(percentile_label(2), "99%");
        assert_eq!(percentile_label(4), "99.99%");
        assert_eq!(latency_label(1000.0), "1 ms");
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(0.0), 0.0);
    }
}
