//! Anomalies over time as a stacked bar chart in SVG, drawn on the server
//! so it shows with script off, with a table of the same counts beside it
//! for screen readers and for reading exact figures.

use std::collections::BTreeMap;
use std::fmt::Write;

use maud::{Markup, html};
use mcp_storage::histogram::Histogram;

use super::page::{time, trusted};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 22.0;

/// Severities from the worst, in the order they stack from the bottom.
const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];

/// Colours that stay apart for the common kinds of colour blindness
/// (Okabe and Ito's palette).
const PALETTE: [&str; 8] = ["#D55E00", "#E69F00", "#0072B2", "#009E73", "#56B4E9", "#CC79A7", "#F0E442", "#000000"];

/// Each severity's colour, from the worst: the same as its badge in the
/// tables (console.css, `.sev-*`).
const SEVERITY_COLOURS: [&str; 5] = ["#8b0000", "#b23c00", "#f2c14e", "#0b5cad", "#8a96a3"];

fn groups_in_order(histogram: &Histogram) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for (_, group, _) in &histogram.counts {
        if !seen.contains(group) {
            seen.push(group.clone());
        }
    }
    let rank = |g: &String| SEVERITIES.iter().position(|s| s == g).unwrap_or(SEVERITIES.len());
    seen.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    seen
}

/// A severity keeps its badge's colour on every chart; other groups
/// (agents) take the palette in their order. Returns the colour and the
/// stylesheet class of its legend swatch.
fn colour(groups: &[String], group: &str) -> (&'static str, String) {
    let by_severity = groups.iter().all(|g| SEVERITIES.contains(&g.as_str()));
    if by_severity && let Some(rank) = SEVERITIES.iter().position(|s| *s == group) {
        return (SEVERITY_COLOURS[rank], format!("sev-{group}"));
    }
    let index = groups.iter().position(|g| g == group).unwrap_or(0) % PALETTE.len();
    (PALETTE[index], format!("c{index}"))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The chart and its table; `what` names the split ("severity" or "agent").
pub(crate) fn render(histogram: &Histogram, what: &str) -> Markup {
    if histogram.slots == 0 {
        return html! { p.empty { "No anomalies in this range to chart." } };
    }
    let groups = groups_in_order(histogram);
    let mut per_slot: Vec<BTreeMap<&str, u64>> = vec![BTreeMap::new(); histogram.slots];
    for (slot, group, count) in &histogram.counts {
        if let Some(counts) = per_slot.get_mut(*slot) {
            *counts.entry(group.as_str()).or_default() += count;
        }
    }
    let tallest = per_slot.iter().map(|c| c.values().sum::<u64>()).max().unwrap_or(0).max(1);
    let plot_w = WIDTH - LEFT;
    let plot_h = HEIGHT - BOTTOM;
    let bar_w = plot_w / histogram.slots as f64;
    let summary = format!(
        "{} anomalies from {} to {}, in slots of {}, by {what}",
        histogram.total(),
        time(histogram.from_ms),
        time(histogram.from_ms + histogram.slot_ms * histogram.slots as i64),
        humantime::format_duration(std::time::Duration::from_millis(histogram.slot_ms.unsigned_abs())),
    );
    let mut svg = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title"><title id="chart-title">{}</title>"#,
        escape(&summary)
    );
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{plot_h}" x2="{WIDTH}" y2="{plot_h}" stroke="#555"/><text x="{}" y="12" text-anchor="end" class="axis">{tallest}</text><text x="{}" y="{plot_h}" text-anchor="end" class="axis">0</text>"##,
        LEFT - 4.0,
        LEFT - 4.0
    );
    for (slot, counts) in per_slot.iter().enumerate() {
        let x = LEFT + slot as f64 * bar_w;
        let mut y = plot_h;
        for group in &groups {
            let Some(count) = counts.get(group.as_str()) else { continue };
            let h = (*count as f64 / tallest as f64) * (plot_h - 16.0);
            y -= h;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}: {count} {}</title></rect>"#,
                (bar_w - 1.0).max(0.5),
                colour(&groups, group).0,
                escape(&time(histogram.from_ms + histogram.slot_ms * slot as i64)),
                escape(group)
            );
        }
    }
    let last = histogram.from_ms + histogram.slot_ms * histogram.slots as i64;
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="{HEIGHT}" class="axis">{}</text><text x="{WIDTH}" y="{HEIGHT}" text-anchor="end" class="axis">{}</text></svg>"#,
        escape(&time(histogram.from_ms)),
        escape(&time(last))
    );
    let totals: Vec<(String, u64)> = groups
        .iter()
        .map(|g| (g.clone(), histogram.counts.iter().filter(|(_, group, _)| group == g).map(|(_, _, n)| n).sum()))
        .collect();
    html! {
        figure.chart {
            (trusted(svg))
            figcaption {
                p.hint { (summary) }
                ul.legend {
                    @for (group, total) in &totals {
                        li {
                            span class={ "swatch " (colour(&groups, group).1) } aria-hidden="true" {}
                            (group) ": " (total)
                        }
                    }
                }
            }
        }
        details {
            summary { "The chart's figures as a table" }
            table {
                caption { (summary) }
                thead { tr { th scope="col" { "Slot from" } @for group in &groups { th scope="col" { (group) } } } }
                tbody {
                    @for (slot, counts) in per_slot.iter().enumerate() {
                        @if !counts.is_empty() {
                            tr {
                                th scope="row" { (time(histogram.from_ms + histogram.slot_ms * slot as i64)) }
                                @for group in &groups { td { (counts.get(group.as_str()).copied().unwrap_or(0)) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_stack_every_group_and_names_are_escaped() {
        let histogram = Histogram {
            from_ms: 0,
            slot_ms: 60_000,
            slots: 3,
            counts: vec![(0, "high".into(), 2), (0, "<low>".into(), 1), (2, "high".into(), 4)],
        };
        let html = render(&histogram, "severity").into_string();
        assert_eq!(html.matches("<rect").count(), 3);
        assert!(html.contains("7 anomalies"));
        assert!(!html.contains("<low>"), "a group's name is text, never markup");
        assert!(html.contains("high: 6"));
    }
}
