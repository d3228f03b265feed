//! Chart geometry computed here and drawn as inline SVG by the templates: sparklines of a
//! stream's last minutes and the bars of a window's aggregate by group.

use super::ResultRow;

/// A line over the last samples, scaled to its own maximum.
#[derive(Debug, Clone, PartialEq)]
pub struct Sparkline {
    pub width: f64,
    pub height: f64,
    /// `x,y x,y ...` for `<polyline points>`; empty without samples.
    pub points: String,
    pub max: f64,
}

pub fn sparkline(values: &[f64], width: f64, height: f64) -> Sparkline {
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    let step = if values.len() > 1 {
        width / (values.len() - 1) as f64
    } else {
        0.0
    };
    let points = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let y = if max > 0.0 {
                height - 1.0 - (v / max) * (height - 2.0)
            } else {
                height - 1.0
            };
            format!("{:.1},{:.1}", i as f64 * step, y)
        })
        .collect::<Vec<_>>()
        .join(" ");
    Sparkline {
        width,
        height,
        points,
        max,
    }
}

/// Horizontal bars, one per group, longest for the largest value.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    pub width: f64,
    pub height: f64,
    /// Where bars start (labels sit left of it).
    pub left: f64,
    pub bars: Vec<Bar>,
    /// Groups not drawn (more than [`MAX_BARS`]).
    pub hidden: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: String,
    pub y: f64,
    pub length: f64,
    pub closed: bool,
}

pub const MAX_BARS: usize = 40;
const BAR_HEIGHT: f64 = 18.0;
const GAP: f64 = 6.0;
const WIDTH: f64 = 720.0;
const VALUE_ROOM: f64 = 70.0;

/// The bars of `rows` for aggregate `measure`, in row order (the backend sorts them).
pub fn bar_chart(rows: &[ResultRow], measure: usize) -> BarChart {
    let shown = &rows[..rows.len().min(MAX_BARS)];
    let longest_label = shown
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(0)
        .min(28);
    let left = (longest_label as f64 * 7.2 + 12.0).max(60.0);
    let max = shown
        .iter()
        .map(|r| r.number(measure))
        .fold(0.0_f64, f64::max);
    let room = WIDTH - left - VALUE_ROOM;
    let bars = shown
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let value = row.number(measure);
            Bar {
                label: shorten(&row.label, 28),
                value: row.values.get(measure).cloned().unwrap_or_default(),
                y: i as f64 * (BAR_HEIGHT + GAP),
                length: if max > 0.0 {
                    (value / max * room).max(1.0)
                } else {
                    1.0
                },
                closed: row.closed,
            }
        })
        .collect::<Vec<_>>();
    BarChart {
        width: WIDTH,
        height: (bars.len() as f64 * (BAR_HEIGHT + GAP)).max(BAR_HEIGHT),
        left,
        bars,
        hidden: rows.len().saturating_sub(MAX_BARS),
    }
}

fn shorten(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(chars - 1).collect();
    short.push('…');
    short
}

impl Bar {
    /// The y of the bar's text baseline.
    pub fn text_y(&self) -> f64 {
        self.y + BAR_HEIGHT - 5.0
    }

    pub fn height(&self) -> f64 {
        BAR_HEIGHT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, value: &str) -> ResultRow {
        ResultRow {
            label: label.into(),
            group: vec![label.into()],
            values: vec![value.into()],
            closed: false,
        }
    }

    #[test]
    fn bars_scale_to_the_largest_value() {
        let chart = bar_chart(&[row("France", "10"), row("Spain", "5")], 0);
        assert_eq!(chart.bars.len(), 2);
        let room = chart.width - chart.left - VALUE_ROOM;
        assert!((chart.bars[0].length - room).abs() < 1e-9);
        assert!((chart.bars[1].length - room / 2.0).abs() < 1e-9);
        assert_eq!(chart.bars[1].value, "5");
        assert!(chart.bars[1].y > chart.bars[0].y);
    }

    #[test]
    fn many_groups_are_cut_and_counted() {
        let rows: Vec<ResultRow> = (0..50).map(|i| row(&format!("g{i}"), "1")).collect();
        let chart = bar_chart(&rows, 0);
        assert_eq!(chart.bars.len(), MAX_BARS);
        assert_eq!(chart.hidden, 10);
    }

    #[test]
    fn sparklines_span_the_width_and_flat_zero_sits_at_the_bottom() {
        let line = sparkline(&[0.0, 5.0, 10.0], 100.0, 20.0);
        assert_eq!(line.points, "0.0,19.0 50.0,10.0 100.0,1.0");
        assert_eq!(line.max, 10.0);
        assert_eq!(
            sparkline(&[0.0, 0.0], 10.0, 20.0).points,
            "0.0,19.0 10.0,19.0"
        );
        assert_eq!(sparkline(&[], 10.0, 20.0).points, "");
    }
}
