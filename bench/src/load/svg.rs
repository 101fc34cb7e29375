//! Grouped bar charts written as SVG text by hand (no plotting dependency): one group
//! per target, one bar per series, the median as the bar and min–max as a whisker.

use std::fmt::Write as _;

use crate::load::report::{Summary, fmt_num};

/// One series: a name for the legend, a fill colour, one value per group.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// CSS colour.
    pub color: &'static str,
    /// One entry per group (`None`: no bar, "n/a" written instead).
    pub values: Vec<Option<Summary>>,
}

/// A chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title on top.
    pub title: String,
    /// Subtitle (unit, what the whiskers are); a `\n` starts a second line (two fit).
    pub subtitle: String,
    /// Group labels (targets).
    pub groups: Vec<String>,
    /// The series.
    pub series: Vec<Series>,
    /// Decimals of the value labels.
    pub decimals: usize,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" axis step (1, 2 or 5 × 10^k) giving about `ticks` ticks up to `max`.
pub fn nice_step(max: f64, ticks: usize) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / ticks.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// The chart as a standalone SVG document.
pub fn render(chart: &Chart) -> String {
    let (w, h) = (760.0_f64, 420.0_f64);
    let (left, right, top, bottom) = (70.0, 20.0, 70.0, 60.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let data_max = chart
        .series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .map(|v| v.max.max(v.median))
        .fold(0.0_f64, f64::max);
    let step = nice_step(data_max * 1.1, 5);
    let axis_max = (data_max * 1.1 / step).ceil().max(1.0) * step;
    let y = |v: f64| top + plot_h - v / axis_max * plot_h;

    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="{}" y="24" font-size="16" font-weight="bold" text-anchor="middle">{}</text>"#,
        w / 2.0,
        esc(&chart.title)
    );
    for (i, line) in chart.subtitle.lines().take(2).enumerate() {
        let _ = writeln!(
            o,
            r##"<text x="{}" y="{}" fill="#555" text-anchor="middle">{}</text>"##,
            w / 2.0,
            42 + 14 * i,
            esc(line)
        );
    }
    // Grid and y axis labels.
    let mut t = 0.0;
    while t <= axis_max + step / 2.0 {
        let yy = y(t);
        let _ = writeln!(
            o,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/>"##,
            left + plot_w
        );
        let _ = writeln!(
            o,
            r##"<text x="{:.1}" y="{:.1}" fill="#333" text-anchor="end">{}</text>"##,
            left - 6.0,
            yy + 4.0,
            fmt_num(t, if step < 1.0 { 2 } else { 0 })
        );
        t += step;
    }
    let _ = writeln!(
        o,
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="#333"/>"##,
        top + plot_h
    );
    let _ = writeln!(
        o,
        r##"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/>"##,
        top + plot_h,
        left + plot_w,
        top + plot_h
    );
    // Bars.
    let groups = chart.groups.len().max(1) as f64;
    let group_w = plot_w / groups;
    let n_series = chart.series.len().max(1) as f64;
    let bar_w = (group_w * 0.8 / n_series).min(60.0);
    // Smaller text when many groups make the bars narrow (seven targets with `--pgo`):
    // 10 and 13 px up to six groups of three bars.
    let round1 = |v: f64| (v * 10.0).round() / 10.0;
    let value_font = round1((bar_w / 2.9).clamp(7.0, 10.0));
    let group_font = round1((group_w / 7.5).clamp(10.0, 13.0));
    for (gi, g) in chart.groups.iter().enumerate() {
        let gx = left + group_w * gi as f64;
        let start = gx + (group_w - bar_w * n_series) / 2.0;
        for (si, s) in chart.series.iter().enumerate() {
            let x = start + bar_w * si as f64;
            let cx = x + bar_w / 2.0;
            match s.values.get(gi).copied().flatten() {
                Some(v) => {
                    let top_y = y(v.median);
                    let _ = writeln!(
                        o,
                        r#"<rect x="{:.1}" y="{top_y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}: {} (min {}, max {}, n={})</title></rect>"#,
                        x + 1.0,
                        bar_w - 2.0,
                        (top + plot_h - top_y).max(0.0),
                        s.color,
                        esc(g),
                        esc(&s.name),
                        fmt_num(v.median, chart.decimals),
                        fmt_num(v.min, chart.decimals),
                        fmt_num(v.max, chart.decimals),
                        v.n
                    );
                    if v.n > 1 && v.max > v.min {
                        let (y1, y2) = (y(v.min), y(v.max));
                        let _ = writeln!(
                            o,
                            r##"<path d="M{cx:.1} {y1:.1}V{y2:.1}M{:.1} {y1:.1}H{:.1}M{:.1} {y2:.1}H{:.1}" stroke="#222" fill="none"/>"##,
                            cx - 4.0,
                            cx + 4.0,
                            cx - 4.0,
                            cx + 4.0
                        );
                    }
                    let label_y = y(v.max.max(v.median)) - 4.0;
                    let _ = writeln!(
                        o,
                        r#"<text x="{cx:.1}" y="{label_y:.1}" font-size="{value_font}" text-anchor="middle">{}</text>"#,
                        fmt_num(v.median, chart.decimals)
                    );
                }
                None => {
                    let _ = writeln!(
                        o,
                        r##"<text x="{cx:.1}" y="{:.1}" font-size="{value_font}" fill="#888" text-anchor="middle">n/a</text>"##,
                        top + plot_h - 4.0
                    );
                }
            }
        }
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" font-size="{group_font}" text-anchor="middle">{}</text>"#,
            gx + group_w / 2.0,
            top + plot_h + 20.0,
            esc(g)
        );
    }
    // Legend.
    let mut lx = left;
    let ly = h - 18.0;
    for s in &chart.series {
        let _ = writeln!(
            o,
            r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{ly:.1}">{}</text>"#,
            ly - 10.0,
            s.color,
            lx + 16.0,
            esc(&s.name)
        );
        lx += 24.0 + 7.0 * s.name.chars().count() as f64;
    }
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps() {
        assert_eq!(nice_step(100.0, 5), 20.0);
        assert_eq!(nice_step(7.0, 5), 2.0);
        assert!((nice_step(0.9, 5) - 0.2).abs() < 1e-12);
    }

    #[test]
    fn renders() {
        let s = Summary {
            median: 2.0,
            min: 1.0,
            max: 3.0,
            n: 3,
        };
        let c = Chart {
            title: "CPU <test>".into(),
            subtitle: "ms\nsecond line".into(),
            groups: vec!["a".into(), "b".into()],
            series: vec![Series {
                name: "1 KiB".into(),
                color: "#4477aa",
                values: vec![Some(s), None],
            }],
            decimals: 1,
        };
        let svg = render(&c);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("CPU &lt;test&gt;"));
        assert!(svg.contains("n/a"));
        assert!(svg.contains(r##"y="56" fill="#555" text-anchor="middle">second line<"##));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(r#"font-size="10" text-anchor="middle">2.0<"#));
        assert!(svg.contains(r#"font-size="13" text-anchor="middle">a<"#));
        // Six groups of three bars: as before; seven: smaller labels.
        let mut wide = Chart {
            groups: (0..6).map(|i| format!("g{i}")).collect(),
            series: vec![c.series[0].clone(); 3],
            ..c
        };
        let svg = render(&wide);
        assert!(
            svg.contains(r#"font-size="10" text-anchor="middle">2.0<"#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"font-size="13" text-anchor="middle">g0<"#),
            "{svg}"
        );
        wide.groups.push("g6".into());
        let svg = render(&wide);
        assert!(
            svg.contains(r#"font-size="8.8" text-anchor="middle">2.0<"#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"font-size="12.8" text-anchor="middle">g0<"#),
            "{svg}"
        );
    }
}
