//! The game day's timeline: every line `make demo` prints is kept with its time and its scene,
//! and at the end each scene becomes a Markdown [`Report`] of its lines, beside the function's
//! own report of what it did — its Markdown and its picture, as the function wrote them to the
//! state bucket — and a summary a person reads first (`target/gameday/README.md`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use std::time::Duration;

use breakwater::clock::{Clock, SystemClock};
use breakwater::report::{Phase, Report};

use crate::proxy::{Fault, FaultProxy, Rule};
use crate::SandboxError;

/// One scene as it was played.
#[derive(Debug, Clone, Default)]
struct Scene {
    function: String,
    title: String,
    lines: Vec<(u64, String)>,
    ended_ms: Option<u64>,
    verdict: Option<Result<String, String>>,
    facts: BTreeMap<String, String>,
    /// The function's own report of the scene (Markdown, SVG picture), when it wrote one.
    own_report: Option<(String, String)>,
}

/// The whole game day.
#[derive(Debug)]
pub struct Timeline {
    started: Instant,
    scenes: Mutex<Vec<Scene>>,
}

/// The timeline of this process.
/// A line of the game day's live timeline (kept for its report).
pub fn say(text: &str) {
    timeline().say(text);
}

/// The game day's timeline, one per process.
pub fn timeline() -> &'static Timeline {
    static TIMELINE: OnceLock<Timeline> = OnceLock::new();
    TIMELINE.get_or_init(|| Timeline {
        started: Instant::now(),
        scenes: Mutex::new(vec![Scene {
            function: "sandbox".into(),
            title: "The estate".into(),
            ..Scene::default()
        }]),
    })
}

fn now_ms() -> u64 {
    SystemClock.now_ms()
}

impl Timeline {
    fn with<T>(&self, f: impl FnOnce(&mut Vec<Scene>) -> T) -> T {
        f(&mut self.scenes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Prints `[  t s] line` and keeps it in the current scene.
    pub fn say(&self, line: &str) {
        println!("[{:>6.2} s] {line}", self.started.elapsed().as_secs_f64());
        self.with(|s| {
            if let Some(scene) = s.last_mut() {
                scene.lines.push((now_ms(), line.to_string()));
            }
        });
    }

    /// Starts a scene.
    pub fn begin(&self, function: &str, title: &str) {
        println!();
        self.with(|s| {
            s.push(Scene {
                function: function.into(),
                title: title.into(),
                ..Scene::default()
            })
        });
        self.say(&format!("━━ {title} ({function})"));
    }

    /// Adds a figure to the current scene.
    pub fn fact(&self, name: &str, value: &str) {
        self.with(|s| {
            if let Some(scene) = s.last_mut() {
                scene.facts.insert(name.into(), value.into());
            }
        });
    }

    /// Keeps the function's own report of the current scene.
    pub fn own_report(&self, report: Report) {
        self.own_documents(report.to_markdown(), report.to_svg());
    }

    /// Keeps the function's own report of the current scene as it was written: its Markdown
    /// and its SVG picture.
    pub fn own_documents(&self, markdown: String, svg: String) {
        self.with(|s| {
            if let Some(scene) = s.last_mut() {
                scene.own_report = Some((markdown, svg));
            }
        });
    }

    /// Ends the current scene with its verdict (the end state read back, or what was wrong).
    pub fn end(&self, verdict: &Result<(), SandboxError>) {
        let ended = now_ms();
        self.with(|s| {
            if let Some(scene) = s.last_mut() {
                scene.ended_ms = Some(ended);
                scene.verdict = Some(match verdict {
                    Ok(()) => Ok("end state verified".into()),
                    Err(e) => Err(e.to_string()),
                });
            }
        });
    }

    /// Writes `README.md` (saying it was played by `how`) and, per scene, `NN-<function>.md`
    /// (its lines) and, when the function wrote a report, `NN-<function>-report.md` and its
    /// picture `NN-<function>.svg` into `dir`; returns the summary's path.
    pub fn write(&self, dir: &Path, how: &str) -> Result<PathBuf, SandboxError> {
        std::fs::create_dir_all(dir).map_err(|e| SandboxError::Io(format!("{dir:?}: {e}")))?;
        let put = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text)
                .map_err(|e| SandboxError::Io(format!("{name}: {e}")))
        };
        let scenes = self.with(|s| s.clone());
        let mut summary = String::from("# Breakwater game day\n\n");
        let _ = writeln!(
            summary,
            "Played by {how} at {} through the release binaries, moto, the Kubernetes \
             emulator and the Lambda Runtime API emulator. Each scene's lines are a Markdown \
             table; a function's own report is beside it, with its picture as SVG (open it in \
             a browser).\n",
            breakwater::clock::rfc3339(
                scenes
                    .first()
                    .and_then(|s| s.lines.first())
                    .map_or(0, |l| l.0)
            )
        );
        summary.push_str("| # | scene | function | took | end state | figures | documents |\n|---|---|---|---|---|---|---|\n");
        for (i, scene) in scenes.iter().enumerate() {
            let Some(first) = scene.lines.first().map(|l| l.0) else {
                continue;
            };
            let end = scene
                .ended_ms
                .unwrap_or_else(|| scene.lines.last().map_or(first, |l| l.0));
            let report = scene_report(scene, end);
            let base = format!("{i:02}-{}", scene.function);
            put(&format!("{base}.md"), &report.to_markdown())?;
            let mut links = format!("lines [md]({base}.md)");
            if let Some((markdown, svg)) = &scene.own_report {
                put(&format!("{base}.svg"), svg)?;
                put(&format!("{base}-report.md"), markdown)?;
                let _ = write!(
                    links,
                    " · report [picture]({base}.svg) [md]({base}-report.md)"
                );
            }
            let verdict = match &scene.verdict {
                Some(Ok(v)) => format!("✅ {v}"),
                Some(Err(e)) => format!("❌ {}", e.replace('|', "/")),
                None => "—".into(),
            };
            let facts: Vec<String> = scene
                .facts
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(
                summary,
                "| {i} | {} | `{}` | {:.1} s | {verdict} | {} | {links} |",
                scene.title,
                scene.function,
                end.saturating_sub(first) as f64 / 1000.0,
                facts.join("; ").replace('|', "/"),
            );
        }
        let path = dir.join("README.md");
        put("README.md", &summary)?;
        Ok(path)
    }

    /// Whether every ended scene was verified.
    pub fn all_verified(&self) -> bool {
        self.with(|s| s.iter().all(|scene| !matches!(scene.verdict, Some(Err(_)))))
    }
}

/// The faults `make gameday` injects into a `rate` share of the functions' AWS calls, in equal
/// parts: throttling, 5xx, 300 ms of latency, a dropped connection, a change that took effect
/// but whose answer was lost (the SDK retries it), and on conditional writes 409
/// `ConditionalRequestConflict` and 412 `PreconditionFailed` (S3 answers those only there).
/// A 403 is not among them: on AWS it is a missing permission that stays missing — what the
/// template grants is pinned by the IAM contract and enforced on every call in the sandbox, and
/// each service's 403 shape by `fault_proxy`'s tests — so a game day that must lose nothing
/// would only measure that a forbidden call is lost, which it must be.
pub fn aws_fault_mix(rate: f64) -> Vec<Rule> {
    let faults = [
        Fault::Throttle,
        Fault::ServerError,
        Fault::Latency(Duration::from_millis(300)),
        Fault::Drop,
        Fault::ResetAfterCommit,
        Fault::Conflict,
        Fault::PreconditionFailed,
    ];
    let share = rate / faults.len() as f64;
    faults
        .into_iter()
        .map(|f| Rule::always(f).probability(share))
        .collect()
}

/// The faults a `rate` share of the functions' Kubernetes API calls get, in equal parts: 429
/// with `Retry-After`, 500, 409 `Conflict` on a change, a dropped connection.
pub fn kube_fault_mix(rate: f64) -> Vec<Rule> {
    let faults = [
        Fault::TooManyRequests,
        Fault::ServerError,
        Fault::Conflict,
        Fault::Drop,
    ];
    let share = rate / faults.len() as f64;
    faults
        .into_iter()
        .map(|f| {
            Rule::always(f)
                .service(crate::proxy::KUBERNETES)
                .probability(share)
        })
        .collect()
}

/// The variable that sets the share of Kubernetes API calls a game day faults (default: the
/// share of AWS calls).
pub const KUBE_FAULTS: &str = "BREAKWATER_GAMEDAY_KUBE_FAULTS";

/// The Kubernetes API endpoint a function of a scene is given: under game-day chaos, a fault
/// proxy in front of the emulator at `emulator` that injects [`kube_fault_mix`] at the share
/// the AWS calls get (or [`KUBE_FAULTS`]), and whose changes are kill points too; else the
/// emulator itself.
pub async fn kube_endpoint(emulator: &str) -> Result<String, SandboxError> {
    let Some(chaos) = crate::runtime::Chaos::get() else {
        return Ok(emulator.to_string());
    };
    let share = match std::env::var(KUBE_FAULTS) {
        Ok(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| (0.0..=0.9).contains(v))
            .ok_or_else(|| {
                SandboxError::Io(format!("{KUBE_FAULTS}={text:?}: a share between 0 and 0.9"))
            })?,
        Err(_) => chaos.proxy.fault_share(),
    };
    let proxy = std::sync::Arc::new(FaultProxy::start(emulator, 29).await?);
    for rule in kube_fault_mix(share) {
        proxy.add_rule(rule);
    }
    let endpoint = proxy.endpoint();
    chaos.watch(proxy);
    Ok(endpoint)
}

/// The calls of a scene that asked upstream for the same change twice and got it twice:
/// `(operation, path, times)`. Writes to the state buckets (checkpoints, compare-and-swap by
/// design) and notifications (at least once) are not changes to the estate.
///
/// A change whose answer the proxy cut off ([`crate::proxy::Fault::ResetAfterCommit`]) and the
/// SDK's retry of it are one request asked for once (AWS deduplicates the retry by the
/// idempotency token the SDK keeps across attempts; moto does not).
pub fn doubled(calls: &[crate::proxy::Call]) -> Vec<(String, String, usize)> {
    let mut seen: std::collections::BTreeMap<(String, String, u64), usize> = Default::default();
    let mut unanswered = std::collections::BTreeSet::new();
    for c in calls.iter().filter(|c| c.mutates() && c.succeeded()) {
        let bookkeeping = (c.service == "s3" && c.path.contains("/breakwater-state-"))
            || matches!(c.service.as_str(), "sns" | "sqs");
        let key = (c.operation.clone(), c.path.clone(), c.body_hash);
        let retry = unanswered.remove(&key);
        if c.fault.as_deref() == Some("ResetAfterCommit") {
            unanswered.insert(key.clone());
        }
        if !bookkeeping && !retry {
            *seen.entry(key).or_default() += 1;
        }
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((op, path, _), n)| (op, path, n))
        .collect()
}

/// A scene as a report: one phase per line, from the line to the next.
fn scene_report(scene: &Scene, end_ms: u64) -> Report {
    let outcome = match &scene.verdict {
        Some(Ok(_)) => "verified",
        Some(Err(_)) => "FAILED",
        None => "played",
    };
    let mut report = Report::new(&scene.function, "game-day", &scene.title, outcome);
    for (i, (at, line)) in scene.lines.iter().enumerate() {
        let next = scene.lines.get(i + 1).map_or(end_ms, |l| l.0).max(*at);
        let mut name: String = line.chars().take(34).collect();
        if line.chars().count() > 34 {
            name.push('…');
        }
        report.phases.push(Phase {
            name,
            started_at_ms: *at,
            finished_at_ms: next,
            detail: line.clone(),
        });
    }
    report.facts = scene.facts.clone();
    if let Some(Err(e)) = &scene.verdict {
        report.notes.push(e.clone());
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(
        service: &str,
        operation: &str,
        path: &str,
        body: u64,
        status: u16,
    ) -> crate::proxy::Call {
        crate::proxy::Call {
            service: service.into(),
            operation: operation.into(),
            region: "us-east-1".into(),
            method: "POST".into(),
            path: path.into(),
            status: Some(status),
            fault: None,
            arrived_us: 0,
            upstream_us: None,
            body_hash: body,
        }
    }

    #[test]
    fn the_same_change_made_twice_is_found_and_nothing_else() {
        let calls = [
            call(
                "eks",
                "UpdateNodegroupConfig",
                "/clusters/c/node-groups/a/update-config",
                1,
                200,
            ),
            call(
                "eks",
                "UpdateNodegroupConfig",
                "/clusters/c/node-groups/a/update-config",
                1,
                200,
            ),
            // Same resource, another request (a restore): not a repeat.
            call(
                "eks",
                "UpdateNodegroupConfig",
                "/clusters/c/node-groups/a/update-config",
                2,
                200,
            ),
            // Refused the second time: not made twice.
            call("rds", "PromoteReadReplica", "/", 3, 200),
            call("rds", "PromoteReadReplica", "/", 3, 400),
            // Reads, checkpoints and notifications are not changes to the estate.
            call(
                "eks",
                "DescribeNodegroup",
                "/clusters/c/node-groups/a",
                4,
                200,
            ),
            call(
                "eks",
                "DescribeNodegroup",
                "/clusters/c/node-groups/a",
                4,
                200,
            ),
            call(
                "s3",
                "PutObject",
                "/breakwater-state-1/failover/x.json",
                5,
                200,
            ),
            call(
                "s3",
                "PutObject",
                "/breakwater-state-1/failover/x.json",
                5,
                200,
            ),
            call("sns", "Publish", "/", 6, 200),
            call("sns", "Publish", "/", 6, 200),
        ];
        assert_eq!(
            doubled(&calls),
            vec![(
                "UpdateNodegroupConfig".to_string(),
                "/clusters/c/node-groups/a/update-config".to_string(),
                2
            )]
        );
    }

    #[test]
    fn the_fault_mixes_add_up_to_the_rate_and_name_every_fault() {
        let aws = aws_fault_mix(0.4);
        let total: f64 = aws.iter().map(|r| r.probability).sum();
        assert!((total - 0.4).abs() < 1e-9, "{total}");
        for fault in [
            Fault::ResetAfterCommit,
            Fault::Conflict,
            Fault::PreconditionFailed,
            Fault::Drop,
        ] {
            assert!(aws.iter().any(|r| r.fault == fault), "{fault:?} missing");
        }
        assert!(aws.iter().all(|r| r.fault != Fault::AccessDenied));
        let kube = kube_fault_mix(0.4);
        let total: f64 = kube.iter().map(|r| r.probability).sum();
        assert!((total - 0.4).abs() < 1e-9, "{total}");
        assert!(kube
            .iter()
            .all(|r| r.service.as_deref() == Some(crate::proxy::KUBERNETES)));
        assert!(kube.iter().any(|r| r.fault == Fault::TooManyRequests));
    }

    #[test]
    fn the_sdks_retry_of_a_change_whose_answer_was_lost_is_not_a_second_change() {
        let path = "/clusters/c/node-groups/a/update-config";
        let mut lost = call("eks", "UpdateNodegroupConfig", path, 1, 200);
        lost.fault = Some("ResetAfterCommit".into());
        let retry = call("eks", "UpdateNodegroupConfig", path, 1, 200);
        assert!(doubled(&[lost.clone(), retry.clone()]).is_empty());
        // A third time is asked for again.
        assert_eq!(
            doubled(&[lost, retry.clone(), retry]),
            vec![("UpdateNodegroupConfig".to_string(), path.to_string(), 2)]
        );
    }

    #[test]
    fn a_scene_becomes_a_report_with_one_phase_per_line() {
        let scene = Scene {
            function: "spot".into(),
            title: "A spot interruption".into(),
            lines: vec![(1_000, "warning".into()), (1_500, "drained".into())],
            ended_ms: Some(2_000),
            verdict: Some(Ok("end state verified".into())),
            ..Scene::default()
        };
        let r = scene_report(&scene, 2_000);
        assert_eq!(r.outcome, "verified");
        assert_eq!(r.phases.len(), 2);
        assert_eq!(
            (r.phases[0].started_at_ms, r.phases[0].finished_at_ms),
            (1_000, 1_500)
        );
        assert_eq!(r.phases[1].finished_at_ms, 2_000);
    }

    #[test]
    fn the_summary_names_each_scene_and_its_verdict() {
        let t = Timeline {
            started: Instant::now(),
            scenes: Mutex::new(Vec::new()),
        };
        t.begin("rollback", "A bad deploy");
        t.fact("rolled back", "web:2 → web:1");
        t.end(&Ok(()));
        t.begin("budget", "Over budget");
        t.own_documents("# Budget\n".into(), "<svg/>".into());
        t.end(&Err(SandboxError::Function("level 2, expected 1".into())));
        let dir = std::env::temp_dir().join(format!("gameday-test-{}", std::process::id()));
        let summary = std::fs::read_to_string(t.write(&dir, "a test").unwrap()).unwrap();
        assert!(
            summary.contains("| 0 | A bad deploy | `rollback` |"),
            "{summary}"
        );
        assert!(summary.contains("✅ end state verified"), "{summary}");
        assert!(
            summary.contains("❌ function: level 2, expected 1"),
            "{summary}"
        );
        assert!(summary.contains("rolled back: web:2 → web:1"), "{summary}");
        // The function's own report and picture beside the scene's lines; a scene without
        // one has no picture.
        assert_eq!(
            std::fs::read_to_string(dir.join("01-budget.svg")).unwrap(),
            "<svg/>"
        );
        assert!(dir.join("01-budget-report.md").exists());
        assert!(dir.join("00-rollback.md").exists() && !dir.join("00-rollback.svg").exists());
        assert!(!t.all_verified());
        let _ = std::fs::remove_dir_all(dir);
    }
}
