//! A latency plot for people: each stage's percentile distribution from its
//! `.hgrm` file as an SVG line chart, x = percentile on HdrHistogram's usual
//! log scale of 1/(1-p) (0 %, 90 %, 99 %, ... 99.99 %), y = milliseconds (log).

use std::fmt::Write as _;
use std::path::Path;

use super::report::parse_hgrm;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 420.0;
const MARGIN: f64 = 60.0;
/// The x axis ends at 99.99 % (1/(1-p) = 10^4).
const X_DECADES: f64 = 4.0;
const COLOURS: [&str; 5] = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e"];

/// Writes `latency.svg` into `dir` from the `.hgrm` files there; returns
/// how many stages had data.
pub fn write_svg(dir: &Path, stages: &[&str]) -> std::io::Result<usize> {
    let mut series = Vec::new();
    for stage in stages {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("{stage}.hgrm"))) else {
            continue;
        };
        if let Some((points, count)) = parse_hgrm(&text) {
            if count > 0 && !points.is_empty() {
                series.push((*stage, points));
            }
        }
    }
    let svg = render(&series);
    std::fs::write(dir.join("latency.svg"), svg)?;
    Ok(series.len())
}

fn x_of(p: f64) -> f64 {
    let decades = (1.0 / (1.0 - p.min(0.99999))).log10().min(X_DECADES);
    MARGIN + decades / X_DECADES * (WIDTH - 2.0 * MARGIN)
}

fn render(series: &[(&str, Vec<(f64, f64)>)]) -> String {
    let all = series.iter().flat_map(|(_, p)| p.iter().map(|(v, _)| *v));
    let v_max = all.clone().fold(0.001f64, f64::max);
    let v_min = all.filter(|v| *v > 0.0).fold(v_max, f64::min);
    let (lo, hi) = (
        v_min.log10().floor(),
        v_max.log10().ceil().max(v_min.log10().floor() + 1.0),
    );
    let y_of = |v: f64| {
        let l = v.max(10f64.powf(lo)).log10();
        HEIGHT - MARGIN - (l - lo) / (hi - lo) * (HEIGHT - 2.0 * MARGIN)
    };
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" \
         fill=\"white\"/>\n<text x=\"{MARGIN}\" y=\"20\">millrace latency by percentile \
         (ms, log)</text>\n"
    );
    for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%"].iter().enumerate() {
        let x = MARGIN + i as f64 / X_DECADES * (WIDTH - 2.0 * MARGIN);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{MARGIN}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            HEIGHT - MARGIN,
            HEIGHT - MARGIN + 18.0
        );
    }
    let mut decade = lo;
    while decade <= hi {
        let y = y_of(10f64.powf(decade));
        let _ = writeln!(
            s,
            "<line x1=\"{MARGIN}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - MARGIN,
            MARGIN - 6.0,
            y + 4.0,
            10f64.powf(decade)
        );
        decade += 1.0;
    }
    for (i, (stage, points)) in series.iter().enumerate() {
        let colour = COLOURS.get(i % COLOURS.len()).copied().unwrap_or("black");
        let path: Vec<String> = points
            .iter()
            .map(|(v, p)| format!("{:.1},{:.1}", x_of(*p), y_of(*v)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\">{stage}</text>",
            path.join(" "),
            WIDTH - MARGIN + 4.0 - 120.0,
            MARGIN + 16.0 * i as f64
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_polyline_per_stage() {
        let series = vec![
            ("wal_commit", vec![(1.0, 0.0), (2.0, 0.9), (9.0, 0.99)]),
            ("end_to_end", vec![(5.0, 0.0), (12.0, 0.9), (30.0, 1.0)]),
        ];
        let svg = render(&series);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(">end_to_end<") && svg.ends_with("</svg>\n"));
        assert!(!svg.contains("NaN"));
    }
}
