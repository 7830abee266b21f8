//! The pictures of the reports: each answers the operator's question of its function at a
//! glance, where a bar per phase cannot.
//!
//! - failover: the phases against the RTO target, the critical path marked;
//! - spot: a lane per pod against the warning's deadline — when each was evicted, which
//!   disruption budget held it back, what was forced;
//! - budget: spend against the ladder's thresholds over the period, the levels climbed and
//!   released;
//! - tiering: bytes per storage class now and at the steady state.
//!
//! Plain SVG 1.1 (no script, no CSS), with the full text of every shortened label in a
//! `<title>` so that a browser shows it on hover.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{seconds, xml, Phase};

/// What a report draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Picture {
    /// Failover: the phases against the RTO target.
    Timeline(RtoTimeline),
    /// Spot: a lane per pod against the deadline.
    Drain(DrainLanes),
    /// Budget: spend against the ladder over the period.
    Ladder(BudgetLadder),
    /// Tiering: bytes per storage class, now and at the steady state.
    Tiers(StorageTiers),
}

/// The failover's phases against its RTO target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtoTimeline {
    /// Where the RTO is measured from (the outage detected).
    pub from_ms: u64,
    /// Where it ends (everything read back healthy), once reached.
    pub to_ms: Option<u64>,
    /// The plan's RTO target.
    pub target_ms: u64,
    /// The names of the phases on the critical path (the chain that set the RTO).
    pub critical: Vec<String>,
}

/// One pod's lane in a drain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lane {
    /// `namespace/name`.
    pub pod: String,
    /// `evicted`, `forced`, `blocked` (still there at the deadline) or `gone` (went by itself).
    pub outcome: String,
    /// When its eviction was first asked.
    pub asked_ms: u64,
    /// When it was evicted, forced, or given up.
    pub settled_ms: u64,
    /// When it was read back gone, if it was before the deadline.
    pub gone_ms: Option<u64>,
    /// The disruption budget that refused it, as the API server named it.
    pub held_by: Option<String>,
    /// How many times it was refused.
    pub refusals: u32,
    /// Evicted or forced, and still terminating at the deadline.
    #[serde(default)]
    pub still_terminating: bool,
}

/// A spot drain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainLanes {
    /// The interruption warning's time (the picture's zero).
    pub warned_ms: u64,
    /// The drain's deadline (the warning + 120 s − the safety margin).
    pub deadline_ms: u64,
    /// When EC2 takes the instance back (the warning + 120 s); none for a rebalance
    /// recommendation.
    pub reclaimed_ms: Option<u64>,
    /// One per pod, in the order they were asked.
    pub lanes: Vec<Lane>,
}

/// One of the ladder's thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// `L2: node groups to their floor`.
    pub label: String,
    /// Percent of the limit.
    pub percent: f64,
    /// Whether it applies to the forecast (else to actual spend).
    pub forecast: bool,
}

/// One confirmed reading of the budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// When it was read.
    pub at_ms: u64,
    /// Actual spend, percent of the limit.
    pub actual_pct: f64,
    /// Forecast, percent of the limit.
    pub forecast_pct: Option<f64>,
}

/// One level change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelStep {
    /// When.
    pub at_ms: u64,
    /// From.
    pub from: u8,
    /// To.
    pub to: u8,
}

/// A budget's period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetLadder {
    /// The period (`2026-11`).
    pub period: String,
    /// Its first millisecond.
    pub start_ms: u64,
    /// The first millisecond after it.
    pub end_ms: u64,
    /// The limit, with its unit (`1000.00 USD`).
    pub limit: String,
    /// The ladder.
    pub thresholds: Vec<Threshold>,
    /// The readings, oldest first.
    pub readings: Vec<Reading>,
    /// The levels climbed and released, oldest first.
    pub steps: Vec<LevelStep>,
}

/// Bytes of one storage class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassBytes {
    /// `Standard`, `Standard-IA`, `Glacier Flexible Retrieval`, `Deep Archive`, …
    pub class: String,
    /// Now.
    pub now_bytes: f64,
    /// Once the lifecycle has reached its steady state.
    pub steady_bytes: f64,
    /// Its storage price, USD per GB-month.
    pub usd_per_gb_month: f64,
}

/// Storage per class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageTiers {
    /// Per class.
    pub classes: Vec<ClassBytes>,
    /// USD per month now.
    pub monthly_now: f64,
    /// USD per month at the steady state.
    pub monthly_steady: f64,
    /// What the steady state assumes, in a sentence.
    pub basis: String,
}

impl Picture {
    /// The picture as SVG, titled; `phases` are the report's (the failover timeline draws them,
    /// the drain's subtitle is the last one's detail).
    pub fn to_svg(&self, title: &str, phases: &[Phase]) -> String {
        match self {
            Picture::Timeline(t) => rto_timeline(title, phases, t),
            Picture::Drain(d) => {
                let took = phases.last().map(|p| p.detail.as_str()).unwrap_or_default();
                drain_lanes(title, took, d)
            }
            Picture::Ladder(l) => budget_ladder(title, l),
            Picture::Tiers(t) => storage_tiers(title, t),
        }
    }
}

const WIDTH: u64 = 1000;
const LEFT: u64 = 250;
const PLOT: u64 = 560;
const BLUE: &str = "#4a90d9";
const DARK: &str = "#1f4e79";
const RED: &str = "#c9302c";
const GREEN: &str = "#3c9d5d";
const AMBER: &str = "#e0a030";
const GREY: &str = "#9aa5b1";

/// A time axis: `[from, to]` onto `[LEFT, LEFT + PLOT]`.
struct Axis {
    from: u64,
    to: u64,
    /// What the tick labels count from.
    origin: u64,
}

impl Axis {
    fn new(from: u64, to: u64) -> Self {
        Axis {
            from,
            to: to.max(from + 1),
            origin: from,
        }
    }

    fn x(&self, ms: u64) -> u64 {
        let ms = ms.clamp(self.from, self.to);
        LEFT + (ms - self.from) * PLOT / (self.to - self.from)
    }

    /// Ticks every round number of seconds, labelled relative to `from`.
    fn ticks(&self, svg: &mut String, top: u64, bottom: u64) {
        let span = self.to - self.from;
        let step = [
            100u64, 250, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000,
            300_000, 600_000, 1_800_000, 3_600_000,
        ]
        .into_iter()
        .find(|s| span / s <= 10)
        .unwrap_or(span / 10 + 1);
        let mut t = 0;
        while t <= span {
            let x = self.x(self.from + t);
            let _ = writeln!(
                svg,
                "<line x1=\"{x}\" y1=\"{top}\" x2=\"{x}\" y2=\"{bottom}\" stroke=\"#e3e7eb\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
                bottom + 14,
                short_seconds(self.from + t - self.origin)
            );
            t += step;
        }
    }
}

fn short_seconds(ms: u64) -> String {
    if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// At most `n` characters, `…` when cut.
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n - 1).collect();
        out.push('…');
        out
    }
}

fn open(svg: &mut String, height: u64, title: &str, subtitle: &str) {
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{WIDTH}\" height=\"{height}\" fill=\"white\"/>\n<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>\n<text x=\"10\" y=\"40\" fill=\"#333\">{}</text>",
        xml(title),
        xml(subtitle)
    );
}

/// A legend entry at (`x`, `y`): a swatch and its text; returns the next entry's `x`.
fn legend(svg: &mut String, x: u64, y: u64, colour: &str, text: &str) -> u64 {
    let _ = writeln!(
        svg,
        "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"10\" fill=\"{colour}\"/><text x=\"{}\" y=\"{y}\">{}</text>",
        y - 9,
        x + 16,
        xml(text)
    );
    x + 30 + 7 * text.chars().count() as u64
}

/// Failover: an RTO gauge (the RTO against its target), then the phases on their own scale,
/// the critical path dark, the RTO's end and — when it falls inside — the target marked.
fn rto_timeline(title: &str, phases: &[Phase], t: &RtoTimeline) -> String {
    const ROW: u64 = 26;
    let start = phases
        .iter()
        .map(|p| p.started_at_ms)
        .chain([t.from_ms])
        .min()
        .unwrap_or(t.from_ms);
    let end = phases
        .iter()
        .map(|p| p.finished_at_ms)
        .chain(t.to_ms)
        .max()
        .unwrap_or(start);
    let target_at = t.from_ms + t.target_ms;
    // The target on the time axis only when it is near enough to be read beside the phases.
    let axis_end = if target_at <= end + end.saturating_sub(start) / 2 {
        end.max(target_at)
    } else {
        end
    };
    let axis = Axis::new(start, axis_end);
    let top = 120;
    let height = top + ROW * phases.len() as u64 + 70;
    let mut svg = String::new();
    let rto = t.to_ms.map(|e| e.saturating_sub(t.from_ms));
    let verdict = match rto {
        Some(ms) if ms <= t.target_ms => format!(
            "RTO {} — within the {} target",
            seconds(ms),
            short_seconds(t.target_ms)
        ),
        Some(ms) => format!(
            "RTO {} — OVER the {} target",
            seconds(ms),
            short_seconds(t.target_ms)
        ),
        None => format!("RTO not reached (target {})", short_seconds(t.target_ms)),
    };
    open(&mut svg, height, title, &verdict);
    // The gauge: 0 … target, the RTO filled (red past the target, the bar then capped).
    let gauge_y = 56;
    let _ = writeln!(
        svg,
        "<text x=\"10\" y=\"{}\">RTO against target</text><rect x=\"{LEFT}\" y=\"{gauge_y}\" width=\"{PLOT}\" height=\"14\" fill=\"#eef1f4\" stroke=\"#bbb\"/>",
        gauge_y + 11
    );
    if let Some(ms) = rto {
        let over = ms > t.target_ms;
        let w = (ms.min(t.target_ms) * PLOT / t.target_ms.max(1)).max(2);
        let _ = writeln!(
            svg,
            "<rect x=\"{LEFT}\" y=\"{gauge_y}\" width=\"{w}\" height=\"14\" fill=\"{}\"><title>{}</title></rect>",
            if over { RED } else { GREEN },
            xml(&verdict)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\">{} target</text><text x=\"{LEFT}\" y=\"{}\" fill=\"#555\">0 s</text>",
        LEFT + PLOT + 6,
        gauge_y + 11,
        short_seconds(t.target_ms),
        gauge_y + 28
    );
    let mut x = LEFT;
    x = legend(&mut svg, x, 104, DARK, "critical path (sets the RTO)");
    x = legend(&mut svg, x, 104, BLUE, "in parallel or after");
    legend(&mut svg, x, 104, RED, "failed");
    let bottom = top + ROW * phases.len() as u64;
    axis.ticks(&mut svg, top - 6, bottom);
    for (i, p) in phases.iter().enumerate() {
        let y = top + ROW * i as u64;
        let x0 = axis.x(p.started_at_ms);
        let w = axis.x(p.finished_at_ms).saturating_sub(x0).max(2);
        let colour = if p.name.contains("failed") {
            RED
        } else if t.critical.contains(&p.name) {
            DARK
        } else {
            BLUE
        };
        let _ = writeln!(
            svg,
            "<text x=\"10\" y=\"{}\">{}<title>{}</title></text><rect x=\"{x0}\" y=\"{y}\" width=\"{w}\" height=\"16\" fill=\"{colour}\"><title>{}</title></rect><text x=\"{}\" y=\"{}\">{}</text>",
            y + 12,
            xml(&cut(&p.name, 34)),
            xml(&p.name),
            xml(&format!("{}: {}", p.name, p.detail)),
            (x0 + w + 6).min(WIDTH - 70),
            y + 12,
            seconds(p.finished_at_ms.saturating_sub(p.started_at_ms))
        );
    }
    if let Some(e) = t.to_ms {
        let x = axis.x(e);
        let _ = writeln!(
            svg,
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"{GREEN}\" stroke-width=\"2\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"middle\" fill=\"{GREEN}\">RTO ends: verified</text>",
            top - 8,
            bottom,
            top - 12
        );
    }
    if axis_end >= target_at {
        let x = axis.x(target_at);
        let _ = writeln!(
            svg,
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{bottom}\" stroke=\"{RED}\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"end\" fill=\"{RED}\">RTO target</text>",
            top - 8,
            bottom + 30
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"10\" y=\"{}\" fill=\"#555\">seconds from {}</text>\n</svg>",
        bottom + 14,
        if start == t.from_ms {
            "detection"
        } else {
            "the first phase"
        }
    );
    svg
}

/// Spot: a lane per pod from the warning, the deadline and the reclaim drawn across.
fn drain_lanes(title: &str, subtitle: &str, d: &DrainLanes) -> String {
    const ROW: u64 = 22;
    let last = d
        .lanes
        .iter()
        .map(|l| l.gone_ms.unwrap_or(l.settled_ms))
        .max()
        .unwrap_or(d.warned_ms);
    let first = d
        .lanes
        .iter()
        .map(|l| l.asked_ms)
        .min()
        .unwrap_or(d.warned_ms)
        .max(d.warned_ms);
    // A drain over well before its deadline is drawn on its own scale (the deadline then off
    // to the right, said in words); the gauge above keeps it against the whole warning.
    let zoom = !d.lanes.is_empty()
        && (last.saturating_sub(first)) * 3 < d.deadline_ms.saturating_sub(d.warned_ms);
    let axis = if zoom {
        let from = d.warned_ms + (first - d.warned_ms) / 1000 * 1000;
        Axis {
            origin: d.warned_ms,
            ..Axis::new(from, last + 500)
        }
    } else {
        Axis::new(
            d.warned_ms,
            d.reclaimed_ms.unwrap_or(d.deadline_ms).max(last),
        )
    };
    let top = 120;
    let rows = d.lanes.len().max(1) as u64;
    let bottom = top + ROW * rows;
    let height = bottom + 74;
    let mut svg = String::new();
    open(&mut svg, height, title, subtitle);
    // The gauge: the warning to the deadline, the drain's span on it.
    let whole = d.deadline_ms.saturating_sub(d.warned_ms).max(1);
    let on_gauge = |ms: u64| LEFT + ms.saturating_sub(d.warned_ms).min(whole) * PLOT / whole;
    let missed = d
        .lanes
        .iter()
        .any(|l| l.outcome == "blocked" || l.still_terminating)
        || last > d.deadline_ms;
    let _ = writeln!(
        svg,
        "<text x=\"10\" y=\"67\">drain against the deadline</text><rect x=\"{LEFT}\" y=\"56\" width=\"{PLOT}\" height=\"14\" fill=\"#eef1f4\" stroke=\"#bbb\"/><rect x=\"{}\" y=\"56\" width=\"{}\" height=\"14\" fill=\"{}\"/><text x=\"{}\" y=\"67\">deadline at {}</text>",
        on_gauge(first),
        on_gauge(last).saturating_sub(on_gauge(first)).max(2),
        if missed { RED } else { GREEN },
        LEFT + PLOT + 6,
        short_seconds(whole)
    );
    let mut x = LEFT;
    x = legend(&mut svg, x, 98, GREEN, "evicted");
    x = legend(&mut svg, x, 98, AMBER, "refused by its budget");
    x = legend(&mut svg, x, 98, RED, "forced / still there");
    legend(&mut svg, x, 98, "#cfd6dd", "terminating");
    axis.ticks(&mut svg, top - 6, bottom);
    if d.lanes.is_empty() {
        let _ = writeln!(
            svg,
            "<text x=\"{LEFT}\" y=\"{}\">no pod to evict</text>",
            top + 14
        );
    }
    for (i, l) in d.lanes.iter().enumerate() {
        let y = top + ROW * i as u64;
        let x0 = axis.x(l.asked_ms);
        let x1 = axis.x(l.settled_ms).max(x0 + 2);
        let refused = l.refusals > 0 || (l.held_by.is_some() && l.outcome != "gone");
        let waiting = if refused { AMBER } else { "#b7d7c2" };
        let end_colour = match l.outcome.as_str() {
            "evicted" | "deregistered" => GREEN,
            "gone" => GREY,
            _ => RED,
        };
        let what = match (l.outcome.as_str(), &l.held_by) {
            ("evicted", Some(pdb)) => format!("{}× {pdb}, evicted", l.refusals),
            ("evicted", None) => "evicted".to_string(),
            ("forced", Some(pdb)) => format!("forced past {pdb}"),
            ("forced", None) => "deleted (delete-now)".to_string(),
            ("blocked", Some(pdb)) => format!("held: {pdb}"),
            ("blocked", None) => "still there".to_string(),
            (other, _) => other.to_string(),
        };
        let full = format!(
            "{}: {what}; asked at {}, settled at {}{}",
            l.pod,
            short_seconds(l.asked_ms.saturating_sub(d.warned_ms)),
            short_seconds(l.settled_ms.saturating_sub(d.warned_ms)),
            l.gone_ms
                .map(|g| format!(", gone at {}", short_seconds(g.saturating_sub(d.warned_ms))))
                .unwrap_or_default()
        );
        let _ = writeln!(
            svg,
            "<text x=\"10\" y=\"{}\">{}<title>{}</title></text><rect x=\"{x0}\" y=\"{}\" width=\"{}\" height=\"12\" fill=\"{waiting}\"><title>{}</title></rect><rect x=\"{}\" y=\"{}\" width=\"4\" height=\"16\" fill=\"{end_colour}\"/>",
            y + 12,
            xml(&cut(&l.pod, 36)),
            xml(&l.pod),
            y + 2,
            x1.saturating_sub(x0),
            xml(&full),
            x1 - 2,
            y
        );
        // Terminating: until read back gone, or still at the deadline.
        let gone = l.gone_ms.or(l.still_terminating.then_some(d.deadline_ms));
        if let Some(g) = gone {
            let xg = axis.x(g);
            if xg > x1 + 1 {
                let _ = writeln!(
                    svg,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"8\" fill=\"#cfd6dd\"/>",
                    x1 + 2,
                    y + 4,
                    xg - x1 - 2
                );
            }
        }
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" fill=\"#333\">{}<title>{}</title></text>",
            LEFT + PLOT + 8,
            y + 12,
            xml(&cut(&what, 26)),
            xml(&full)
        );
    }
    if zoom {
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"{RED}\">deadline at {}, {}: beyond this scale →</text>",
            LEFT + PLOT,
            bottom + 30,
            short_seconds(whole),
            d.reclaimed_ms
                .map(|r| format!(
                    "instance reclaimed at {}",
                    short_seconds(r.saturating_sub(d.warned_ms))
                ))
                .unwrap_or_else(|| "no reclaim (a rebalance recommendation)".into())
        );
    }
    for (i, (at, label, colour, dash)) in [
        (Some(d.deadline_ms), "deadline", RED, "6 4"),
        (d.reclaimed_ms, "instance reclaimed", "#333", "2 3"),
    ]
    .into_iter()
    .enumerate()
    {
        let Some(at) = at else { continue };
        if zoom {
            break;
        }
        let x = axis.x(at);
        let _ = writeln!(
            svg,
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{bottom}\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"end\" fill=\"{colour}\">{label} at {}</text>",
            top - 8,
            bottom + 30 + 14 * i as u64,
            short_seconds(at.saturating_sub(d.warned_ms))
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"10\" y=\"{}\" fill=\"#555\">seconds from the warning</text>\n</svg>",
        bottom + 14
    );
    svg
}

/// Budget: percent of the limit over the period, the thresholds across, the level held as a
/// band beneath.
fn budget_ladder(title: &str, b: &BudgetLadder) -> String {
    const TOP: u64 = 80;
    const CHART: u64 = 260;
    let axis = Axis::new(b.start_ms, b.end_ms);
    let max_pct = b
        .readings
        .iter()
        .flat_map(|r| [Some(r.actual_pct), r.forecast_pct])
        .flatten()
        .chain(b.thresholds.iter().map(|t| t.percent))
        .fold(100.0f64, f64::max)
        * 1.1;
    let y = |pct: f64| TOP + CHART - ((pct.max(0.0) / max_pct) * CHART as f64) as u64;
    let band = TOP + CHART + 34;
    let height = band + 66;
    let level = b.steps.last().map(|s| s.to).unwrap_or(0);
    let last = b.readings.last();
    let subtitle = format!(
        "period {} · limit {} · level now L{level}{}",
        b.period,
        b.limit,
        last.map(|r| format!(
            " · actual {:.1} %, forecast {}",
            r.actual_pct,
            r.forecast_pct
                .map(|f| format!("{f:.1} %"))
                .unwrap_or_else(|| "n/a".into())
        ))
        .unwrap_or_default()
    );
    let mut svg = String::new();
    open(&mut svg, height, title, &subtitle);
    let mut x = LEFT;
    x = legend(&mut svg, x, 62, DARK, "actual spend");
    x = legend(&mut svg, x, 62, BLUE, "forecast (dashed)");
    legend(&mut svg, x, 62, RED, "thresholds");
    // Days across.
    let day = 86_400_000u64;
    let days = b.end_ms.saturating_sub(b.start_ms).div_ceil(day);
    let every = match days {
        0..=14 => 1,
        15..=62 => 5,
        63..=120 => 10,
        _ => 30,
    };
    let mut d = 0;
    while d <= days {
        let xd = axis.x(b.start_ms + d * day);
        let _ = writeln!(
            svg,
            "<line x1=\"{xd}\" y1=\"{TOP}\" x2=\"{xd}\" y2=\"{}\" stroke=\"#eef1f4\"/><text x=\"{xd}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">day {}</text>",
            TOP + CHART,
            TOP + CHART + 14,
            d + 1
        );
        d += every;
    }
    // Percent up the side, at most about eight lines whatever the overspend.
    let step = [25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0]
        .into_iter()
        .find(|s| max_pct / s <= 8.0)
        .unwrap_or((max_pct / 8.0).ceil());
    let mut p = 0.0;
    while p <= max_pct {
        let yp = y(p);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{yp}\" x2=\"{}\" y2=\"{yp}\" stroke=\"#eef1f4\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#555\">{p:.0} %</text>",
            LEFT + PLOT,
            LEFT - 6,
            yp + 4
        );
        p += step;
    }
    // Labels top-down, each at least a line below the one above (close thresholds).
    let mut order: Vec<&Threshold> = b.thresholds.iter().collect();
    order.sort_by(|a, b| b.percent.total_cmp(&a.percent));
    let mut next_free = 0u64;
    for t in order {
        let yt = y(t.percent);
        let label = format!(
            "{}: {} ≥ {:.0} %",
            t.label.split_whitespace().next().unwrap_or_default(),
            if t.forecast { "forecast" } else { "actual" },
            t.percent
        );
        let ly = (yt + 4).max(next_free);
        next_free = ly + 13;
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{yt}\" x2=\"{}\" y2=\"{yt}\" stroke=\"{RED}\" stroke-opacity=\"0.6\"{}/><text x=\"{}\" y=\"{ly}\" fill=\"{RED}\">{}<title>{}</title></text>",
            LEFT + PLOT,
            if t.forecast { " stroke-dasharray=\"5 4\"" } else { "" },
            LEFT + PLOT + 6,
            xml(&label),
            xml(&format!("{label}: {}", t.label))
        );
    }
    let points = |f: &dyn Fn(&Reading) -> Option<f64>| -> String {
        b.readings
            .iter()
            .filter_map(|r| f(r).map(|v| format!("{},{}", axis.x(r.at_ms), y(v))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (colour, dash, pts) in [
        (DARK, "", points(&|r| Some(r.actual_pct))),
        (
            BLUE,
            " stroke-dasharray=\"6 4\"",
            points(&|r| r.forecast_pct),
        ),
    ] {
        if !pts.is_empty() {
            let _ = writeln!(
                svg,
                "<polyline points=\"{pts}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>"
            );
        }
    }
    for r in &b.readings {
        let _ = writeln!(
            svg,
            "<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{DARK}\"><title>actual {:.1} %</title></circle>",
            axis.x(r.at_ms),
            y(r.actual_pct),
            r.actual_pct
        );
    }
    // The level held, as a band: one segment per level, from each change to the next.
    let _ = writeln!(svg, "<text x=\"10\" y=\"{}\">level held</text>", band + 14);
    let mut from = (b.start_ms, b.steps.first().map_or(level, |s| s.from));
    let mut segments = Vec::new();
    for s in &b.steps {
        segments.push((from.0, s.at_ms, from.1));
        from = (s.at_ms, s.to);
    }
    let now = b.readings.last().map_or(from.0, |r| r.at_ms).max(from.0);
    segments.push((from.0, now, from.1));
    for (a, z, lvl) in segments {
        let (xa, xz) = (axis.x(a), axis.x(z));
        let shade =
            ["#e8f5e9", "#fff3cd", "#ffd8a8", "#f8b4b4", "#c9302c"][usize::from(lvl.min(4))];
        let _ = writeln!(
            svg,
            "<rect x=\"{xa}\" y=\"{band}\" width=\"{}\" height=\"20\" fill=\"{shade}\" stroke=\"#bbb\"><title>L{lvl}</title></rect>",
            xz.saturating_sub(xa).max(1)
        );
        if xz.saturating_sub(xa) >= 24 {
            let _ = writeln!(
                svg,
                "<text x=\"{}\" y=\"{}\">L{lvl}</text>",
                xa + 4,
                band + 14
            );
        }
    }
    // Changes made together (one evaluation climbs several levels) are one mark.
    let mut marks: Vec<LevelStep> = Vec::new();
    for s in &b.steps {
        match marks.last_mut() {
            Some(m)
                if axis.x(s.at_ms) <= axis.x(m.at_ms) + 2 && (s.to > s.from) == (m.to > m.from) =>
            {
                m.to = s.to;
            }
            _ => marks.push(s.clone()),
        }
    }
    for s in &marks {
        let xs = axis.x(s.at_ms);
        let (mark, colour) = if s.to > s.from {
            (format!("↑ L{}→L{}", s.from, s.to), RED)
        } else {
            (format!("↓ L{}→L{}", s.from, s.to), GREEN)
        };
        let _ = writeln!(
            svg,
            "<line x1=\"{xs}\" y1=\"{TOP}\" x2=\"{xs}\" y2=\"{}\" stroke=\"{colour}\" stroke-opacity=\"0.5\"/><text x=\"{xs}\" y=\"{}\" text-anchor=\"middle\" fill=\"{colour}\">{mark}</text>",
            band + 20,
            band + 36
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"10\" y=\"{}\" fill=\"#555\">{}</text>",
        band + 56,
        xml(&b
            .thresholds
            .iter()
            .map(|t| t.label.as_str())
            .collect::<Vec<_>>()
            .join(" · "))
    );
    svg.push_str("</svg>\n");
    svg
}

/// Tiering: per class, a bar now and a bar at the steady state, on one scale.
fn storage_tiers(title: &str, t: &StorageTiers) -> String {
    const TOP: u64 = 80;
    const GROUP: u64 = 44;
    let gib = 1_073_741_824.0;
    let max = t
        .classes
        .iter()
        .flat_map(|c| [c.now_bytes, c.steady_bytes])
        .fold(1.0f64, f64::max);
    let height = TOP + GROUP * t.classes.len().max(1) as u64 + 36;
    let mut svg = String::new();
    let saving = t.monthly_now - t.monthly_steady;
    open(
        &mut svg,
        height,
        title,
        &format!(
            "USD {:.2} a month now, {:.2} at the steady state: {} {:.2} a month",
            t.monthly_now,
            t.monthly_steady,
            if saving >= 0.0 { "saves" } else { "costs" },
            saving.abs()
        ),
    );
    let x = legend(&mut svg, LEFT, 62, GREY, "now");
    legend(&mut svg, x, 62, BLUE, "at the steady state");
    for (i, c) in t.classes.iter().enumerate() {
        let y = TOP + GROUP * i as u64;
        let _ = writeln!(
            svg,
            "<text x=\"10\" y=\"{}\">{}</text>",
            y + 20,
            xml(&cut(&c.class, 34))
        );
        for (j, (bytes, colour)) in [(c.now_bytes, GREY), (c.steady_bytes, BLUE)]
            .into_iter()
            .enumerate()
        {
            let yb = y + 4 + 18 * j as u64;
            // Room on the right of the longest bar for its label.
            let w = ((bytes / max) * (PLOT - 120) as f64) as u64;
            let label = if bytes > 0.0 {
                format!(
                    "{} · USD {:.2}/month",
                    size(bytes, gib),
                    bytes / gib * c.usd_per_gb_month
                )
            } else {
                "none".to_string()
            };
            let _ = writeln!(
                svg,
                "<rect x=\"{LEFT}\" y=\"{yb}\" width=\"{}\" height=\"14\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\">{}</text>",
                w.max(u64::from(bytes > 0.0)),
                LEFT + w + 6,
                yb + 11,
                label
            );
        }
    }
    let _ = writeln!(
        svg,
        "<text x=\"10\" y=\"{}\" fill=\"#555\">{}</text>",
        height - 12,
        xml(&t.basis)
    );
    svg.push_str("</svg>\n");
    svg
}

fn size(bytes: f64, gib: f64) -> String {
    if bytes >= gib * 1024.0 {
        format!("{:.1} TiB", bytes / gib / 1024.0)
    } else if bytes >= gib {
        format!("{:.1} GiB", bytes / gib)
    } else {
        format!("{:.1} MiB", bytes / 1_048_576.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SVG parsed (it must be well-formed XML), and the texts it shows.
    fn texts(svg: &str) -> Vec<String> {
        let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| {
                n.children()
                    .filter(|c| c.is_text())
                    .filter_map(|c| c.text())
                    .collect()
            })
            .collect()
    }

    /// The `fill` of the bar whose tooltip begins with `title`.
    fn fill_of(svg: &str, title: &str) -> String {
        let doc = roxmltree::Document::parse(svg).unwrap();
        doc.descendants()
            .filter(|n| n.has_tag_name("rect"))
            .find(|n| {
                n.children().any(|c| {
                    c.has_tag_name("title") && c.text().is_some_and(|t| t.starts_with(title))
                })
            })
            .and_then(|n| n.attribute("fill"))
            .unwrap_or_else(|| panic!("no bar titled {title}"))
            .to_string()
    }

    fn phase(name: &str, from: u64, to: u64) -> Phase {
        Phase {
            name: name.into(),
            started_at_ms: from,
            finished_at_ms: to,
            detail: format!("{name} detail"),
        }
    }

    #[test]
    fn the_failover_timeline_marks_the_critical_path_and_the_rto_against_its_target() {
        let phases = [
            phase("detected → decided", 0, 2_000),
            phase("database (done)", 2_000, 6_000),
            phase("nodes (done)", 2_000, 4_000),
            phase("verify (done)", 6_000, 7_000),
            phase("report (done)", 7_000, 7_100),
        ];
        let t = RtoTimeline {
            from_ms: 0,
            to_ms: Some(7_000),
            target_ms: 900_000,
            critical: vec![
                "detected → decided".into(),
                "database (done)".into(),
                "verify (done)".into(),
            ],
        };
        let svg = rto_timeline("failover", &phases, &t);
        let shown = texts(&svg);
        assert!(shown.contains(&"RTO 7.000 s — within the 900 s target".to_string()));
        assert_eq!(fill_of(&svg, "database (done)"), DARK);
        assert_eq!(fill_of(&svg, "nodes (done)"), BLUE);
        assert_eq!(fill_of(&svg, "report (done)"), BLUE);
        assert!(shown.contains(&"RTO ends: verified".to_string()));
        // 900 s is far beyond 7 s: on the gauge, not on the phases' scale
        assert!(!shown.contains(&"RTO target".to_string()));
        // Over a target near enough, the target is drawn on the phases' scale
        let svg = rto_timeline(
            "failover",
            &phases,
            &RtoTimeline {
                target_ms: 5_000,
                ..t
            },
        );
        let shown = texts(&svg);
        assert!(shown.contains(&"RTO 7.000 s — OVER the 5 s target".to_string()));
        assert!(shown.contains(&"RTO target".to_string()));
    }

    fn lane(pod: &str, outcome: &str, asked: u64, settled: u64, held_by: Option<&str>) -> Lane {
        Lane {
            pod: pod.into(),
            outcome: outcome.into(),
            asked_ms: asked,
            settled_ms: settled,
            gone_ms: Some(settled + 1_000),
            held_by: held_by.map(str::to_string),
            refusals: u32::from(held_by.is_some()) * 2,
            still_terminating: false,
        }
    }

    #[test]
    fn a_drain_shows_each_pod_against_the_deadline_and_names_what_held_it() {
        let lanes = DrainLanes {
            warned_ms: 0,
            deadline_ms: 110_000,
            reclaimed_ms: Some(120_000),
            lanes: vec![
                lane("shop/web-0", "evicted", 20_000, 20_100, None),
                lane("shop/web-1", "evicted", 20_000, 60_000, Some("PDB web")),
                lane(
                    "money/ledger-0",
                    "forced",
                    20_000,
                    105_000,
                    Some("PDB ledger"),
                ),
                Lane {
                    gone_ms: None,
                    ..lane(
                        "money/vault-0",
                        "blocked",
                        20_000,
                        110_000,
                        Some("PDB vault"),
                    )
                },
            ],
        };
        let svg = drain_lanes("spot", "2 evicted, 1 forced, 1 still there", &lanes);
        let shown = texts(&svg);
        for said in [
            "evicted",
            "2× PDB web, evicted",
            "forced past PDB ledger",
            "held: PDB vault",
            "deadline at 110 s",
            "instance reclaimed at 120 s",
        ] {
            assert!(shown.iter().any(|t| t == said), "{said} not in {shown:?}");
        }
        assert_eq!(fill_of(&svg, "shop/web-1:"), AMBER);
        assert_eq!(fill_of(&svg, "shop/web-0:"), "#b7d7c2");
        // A drain over in 2 s of 110 is drawn on its own scale, the deadline said in words
        let quick = DrainLanes {
            lanes: vec![lane("shop/web-0", "evicted", 20_000, 21_000, None)],
            ..lanes
        };
        let shown = texts(&drain_lanes("spot", "", &quick));
        assert!(
            shown.contains(
                &"deadline at 110 s, instance reclaimed at 120 s: beyond this scale →".to_string()
            ),
            "{shown:?}"
        );
        // … its ticks still counted from the warning
        assert!(shown.contains(&"20 s".to_string()), "{shown:?}");
    }

    #[test]
    fn the_budget_ladder_draws_levels_climbed_together_as_one_mark_and_labels_apart() {
        let day = 86_400_000;
        let ladder = BudgetLadder {
            period: "2026-11".into(),
            start_ms: 0,
            end_ms: 30 * day,
            limit: "2,460.00 USD".into(),
            thresholds: vec![
                Threshold {
                    label: "L1 notify".into(),
                    percent: 90.0,
                    forecast: true,
                },
                Threshold {
                    label: "L2 node groups to floor".into(),
                    percent: 100.0,
                    forecast: true,
                },
                Threshold {
                    label: "L3 stop non-prod databases".into(),
                    percent: 85.0,
                    forecast: false,
                },
                Threshold {
                    label: "L4 loud notice".into(),
                    percent: 100.0,
                    forecast: false,
                },
            ],
            readings: vec![
                Reading {
                    at_ms: 10 * day,
                    actual_pct: 40.0,
                    forecast_pct: Some(80.0),
                },
                Reading {
                    at_ms: 19 * day,
                    actual_pct: 86.0,
                    forecast_pct: Some(108.0),
                },
            ],
            steps: (0..3)
                .map(|l| LevelStep {
                    at_ms: 19 * day + l,
                    from: l as u8,
                    to: l as u8 + 1,
                })
                .chain([
                    LevelStep {
                        at_ms: 30 * day,
                        from: 3,
                        to: 2,
                    },
                    LevelStep {
                        at_ms: 30 * day,
                        from: 2,
                        to: 1,
                    },
                ])
                .collect(),
        };
        let svg = budget_ladder("budget", &ladder);
        let shown = texts(&svg);
        assert!(shown.contains(&"↑ L0→L3".to_string()), "{shown:?}");
        assert!(shown.contains(&"↓ L3→L1".to_string()), "{shown:?}");
        assert!(!shown.iter().any(|t| t == "↑ L1→L2"));
        // The thresholds' labels, top-down, a line apart even where two share 100 %
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let ys: Vec<u64> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text") && n.text().is_some_and(|t| t.contains("≥")))
            .map(|n| n.attribute("y").unwrap().parse().unwrap())
            .collect();
        assert_eq!(ys.len(), 4);
        assert!(ys.windows(2).all(|w| w[1] >= w[0] + 13), "{ys:?}");
        assert!(shown[1].contains("level now L1") && shown[1].contains("actual 86.0 %"));
    }

    #[test]
    fn tiers_show_bytes_and_cost_per_class_now_and_at_the_steady_state() {
        let gib = 1_073_741_824.0;
        let t = StorageTiers {
            classes: vec![
                ClassBytes {
                    class: "Standard".into(),
                    now_bytes: 1000.0 * gib,
                    steady_bytes: 100.0 * gib,
                    usd_per_gb_month: 0.023,
                },
                ClassBytes {
                    class: "Glacier Deep Archive".into(),
                    now_bytes: 0.0,
                    steady_bytes: 900.0 * gib,
                    usd_per_gb_month: 0.00099,
                },
            ],
            monthly_now: 23.0,
            monthly_steady: 3.19,
            basis: "ages assumed uniform".into(),
        };
        let shown = texts(&storage_tiers("tiering", &t));
        for said in [
            "USD 23.00 a month now, 3.19 at the steady state: saves 19.81 a month",
            "1000.0 GiB · USD 23.00/month",
            "none",
            "900.0 GiB · USD 0.89/month",
            "ages assumed uniform",
        ] {
            assert!(shown.iter().any(|s| s == said), "{said} not in {shown:?}");
        }
    }
}
