//! Reports: what a function did, as JSON for machines and Markdown for people, written to
//! `reports/<function>/<execution-id>.{json,md}` in the state bucket.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;
use crate::error::Result;
use crate::state::{key_segment, StateStore};

pub mod picture;

pub use picture::Picture;

/// One phase of an execution, with its timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    /// The phase's name (`detected`, `database promoted`, `node drained`, …).
    pub name: String,
    /// When it began (ms since the epoch).
    pub started_at_ms: u64,
    /// When it ended (ms since the epoch).
    pub finished_at_ms: u64,
    /// What happened, in a sentence.
    pub detail: String,
}

/// One change made to AWS or Kubernetes, with the request id that proves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// What was done (`UpdateNodegroupConfig`).
    pub operation: String,
    /// On what.
    pub target: String,
    /// The request id AWS or the API server returned, if any.
    pub request_id: Option<String>,
}

/// A report of one execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The function that wrote it.
    pub function: String,
    /// The execution (or event) it reports on.
    pub execution_id: String,
    /// A one-line title.
    pub title: String,
    /// `acted`, `refused`, `noop`, `failed`, `dry-run`, …
    pub outcome: String,
    /// The phases in order.
    pub phases: Vec<Phase>,
    /// Every change made.
    pub actions: Vec<Action>,
    /// Key figures (`rto_seconds`, `lag_seconds`, …).
    pub facts: BTreeMap<String, String>,
    /// Anything else a reader must know (assumptions, what was left alone and why).
    pub notes: Vec<String>,
    /// The picture that answers the function's question (else the SVG is the phases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<Picture>,
}

/// Where a report was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportLocation {
    /// The bucket.
    pub bucket: String,
    /// The JSON document's key.
    pub json_key: String,
    /// The Markdown document's key.
    pub markdown_key: String,
    /// The SVG timeline's key.
    pub svg_key: String,
}

impl ReportLocation {
    /// The Markdown report's page in the S3 console of `region` (the bucket's region): the
    /// console's object page, `s3/object/<bucket>?region=<region>&prefix=<key>`, for the people
    /// reading the notification.
    pub fn console_url(&self, region: &str) -> String {
        format!(
            "https://{region}.console.aws.amazon.com/s3/object/{}?region={region}&prefix={}",
            self.bucket,
            // Percent-encoded whole (`/` and `%` too) as a query value.
            key_segment(&self.markdown_key)
        )
    }
}

impl Report {
    /// An empty report.
    pub fn new(function: &str, execution_id: &str, title: &str, outcome: &str) -> Self {
        Report {
            function: function.into(),
            execution_id: execution_id.into(),
            title: title.into(),
            outcome: outcome.into(),
            phases: Vec::new(),
            actions: Vec::new(),
            facts: BTreeMap::new(),
            notes: Vec::new(),
            picture: None,
        }
    }

    /// The report for people.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# {}\n", self.title);
        let _ = writeln!(md, "- function: `{}`", self.function);
        let _ = writeln!(md, "- execution: `{}`", self.execution_id);
        let _ = writeln!(md, "- outcome: **{}**", self.outcome);
        if let (Some(first), Some(last)) = (self.phases.first(), self.phases.last()) {
            let total = last.finished_at_ms.saturating_sub(first.started_at_ms);
            let _ = writeln!(
                md,
                "- from {} to {} ({})",
                rfc3339(first.started_at_ms),
                rfc3339(last.finished_at_ms),
                seconds(total)
            );
        }
        if !self.facts.is_empty() {
            let _ = writeln!(md, "\n## Figures\n\n| figure | value |\n|---|---|");
            for (k, v) in &self.facts {
                let _ = writeln!(md, "| {} | {} |", cell(k), cell(v));
            }
        }
        if !self.phases.is_empty() {
            let _ = writeln!(
                md,
                "\n## Timeline\n\n| phase | start | duration | detail |\n|---|---|---|---|"
            );
            for p in &self.phases {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    cell(&p.name),
                    rfc3339(p.started_at_ms),
                    seconds(p.finished_at_ms.saturating_sub(p.started_at_ms)),
                    cell(&p.detail)
                );
            }
        }
        if !self.actions.is_empty() {
            let _ = writeln!(
                md,
                "\n## Actions\n\n| operation | target | request id |\n|---|---|---|"
            );
            for a in &self.actions {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} |",
                    cell(&a.operation),
                    cell(&a.target),
                    a.request_id
                        .as_deref()
                        .map(cell)
                        .unwrap_or_else(|| "—".into())
                );
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(md, "\n## Notes\n");
            for n in &self.notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        md
    }

    /// Writes the JSON and Markdown documents to the state bucket.
    pub async fn write(&self, store: &StateStore) -> Result<ReportLocation> {
        let base = format!(
            "reports/{}/{}",
            key_segment(&self.function),
            key_segment(&self.execution_id)
        );
        let json_key = format!("{base}.json");
        let markdown_key = format!("{base}.md");
        let svg_key = format!("{base}.svg");
        store.put(&json_key, self).await?;
        store
            .put_document(
                &markdown_key,
                self.to_markdown().into_bytes(),
                "text/markdown; charset=utf-8",
            )
            .await?;
        store
            .put_document(&svg_key, self.to_svg().into_bytes(), "image/svg+xml")
            .await?;
        Ok(ReportLocation {
            bucket: store.bucket().to_string(),
            json_key,
            markdown_key,
            svg_key,
        })
    }

    /// The report's picture as SVG (see [`picture`]); without one, the phases as a timeline.
    pub fn to_svg(&self) -> String {
        match &self.picture {
            Some(p) => p.to_svg(&format!("{} — {}", self.title, self.outcome), &self.phases),
            None => self.phase_bars(),
        }
    }

    /// The phases as an SVG timeline: one bar per phase on a shared time axis, its duration
    /// beside it (overlapping phases — parallel steps — show as overlapping bars).
    fn phase_bars(&self) -> String {
        const LEFT: u64 = 230;
        const WIDTH: u64 = 560;
        const ROW: u64 = 26;
        let start = self
            .phases
            .iter()
            .map(|p| p.started_at_ms)
            .min()
            .unwrap_or(0);
        let end = self
            .phases
            .iter()
            .map(|p| p.finished_at_ms)
            .max()
            .unwrap_or(start);
        let span = end.saturating_sub(start).max(1);
        let x = |ms: u64| LEFT + ms.saturating_sub(start) * WIDTH / span;
        let height = 60 + ROW * self.phases.len() as u64;
        let mut svg = String::new();
        let _ = write!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
            LEFT + WIDTH + 90,
            xml(&format!("{} — {} ({})", self.title, self.outcome, seconds(end.saturating_sub(start))))
        );
        for (i, phase) in self.phases.iter().enumerate() {
            let y = 40 + ROW * i as u64;
            let x0 = x(phase.started_at_ms);
            let w = x(phase.finished_at_ms).saturating_sub(x0).max(2);
            let colour = if phase.name.contains("failed") {
                "#d9534f"
            } else {
                "#4a90d9"
            };
            let _ = writeln!(
                svg,
                "<text x=\"10\" y=\"{}\">{}</text><rect x=\"{x0}\" y=\"{y}\" width=\"{w}\" height=\"16\" fill=\"{colour}\"><title>{}</title></rect><text x=\"{}\" y=\"{}\">{}</text>",
                y + 12,
                xml(&phase.name),
                xml(&phase.detail),
                x0 + w + 6,
                y + 12,
                seconds(phase.finished_at_ms.saturating_sub(phase.started_at_ms))
            );
        }
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#999\"/><text x=\"{LEFT}\" y=\"{2}\">0 s</text><text x=\"{1}\" y=\"{2}\" text-anchor=\"end\">{3}</text>\n</svg>",
            height - 18,
            LEFT + WIDTH,
            height - 4,
            seconds(span)
        );
        svg
    }
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03} s", ms / 1000, ms % 1000)
}

/// Text escaped for XML.
fn xml(s: &str) -> String {
    // XML 1.0 allows no control character but tab, line feed and carriage return.
    s.replace(
        |c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r'),
        "",
    )
    .replace('&', "&amp;")
    .replace('<', "&lt;")
    .replace('>', "&gt;")
    .replace('"', "&quot;")
}

/// A Markdown table cell: pipes escaped, line breaks flattened.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_link_encodes_the_whole_key_once() {
        let location = ReportLocation {
            bucket: "breakwater-state-123456789012-us-west-2".into(),
            json_key: "reports/failover/exec%2F42.json".into(),
            markdown_key: "reports/failover/exec%2F42.md".into(),
            svg_key: "reports/failover/exec%2F42.svg".into(),
        };
        assert_eq!(
            location.console_url("us-west-2"),
            "https://us-west-2.console.aws.amazon.com/s3/object/breakwater-state-123456789012-us-west-2?region=us-west-2&prefix=reports%2Ffailover%2Fexec%252F42.md"
        );
    }

    #[test]
    fn markdown_has_figures_timeline_and_actions() {
        let mut report = Report::new("failover", "exec-1", "Failover drill", "acted");
        report
            .facts
            .insert("rto_seconds".into(), "412 (target 900)".into());
        report.phases.push(Phase {
            name: "detected".into(),
            started_at_ms: 1_000,
            finished_at_ms: 3_500,
            detail: "2 of 3 | signals".into(),
        });
        report.actions.push(Action {
            operation: "PromoteReadReplica".into(),
            target: "db-replica".into(),
            request_id: Some("req-7".into()),
        });
        report.notes.push("lag at promotion was 0 s".into());
        let md = report.to_markdown();
        assert!(md.starts_with("# Failover drill\n"));
        assert!(md.contains("| rto_seconds | 412 (target 900) |"));
        assert!(
            md.contains("| detected | 1970-01-01T00:00:01.000Z | 2.500 s | 2 of 3 \\| signals |"),
            "{md}"
        );
        assert!(md.contains("| PromoteReadReplica | db-replica | req-7 |"));
        assert!(md.contains("- lag at promotion was 0 s"));
        let svg = report.to_svg();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(">detected</text>") && svg.contains("2 of 3 | signals"));
        assert!(svg.contains(">2.500 s</text>"), "{svg}");
    }
}
