//! The drain as stories on the in-memory pods, in paused time: budgets retried until they allow
//! or until `deadline − grace`, what each policy does then, pods gone or replaced, pods left
//! alone, tiers and their cut-offs, throttling, and pods still terminating at the deadline.

use std::sync::Arc;
use std::time::Duration;

use breakwater::fakes::pods::{Budget, FakePods, PausedClock, REPLACEMENT_READY};
use breakwater::kube::pods::{Deletion, Eviction, PodInfo, Pods, Waited};
use breakwater::Error;
use spot::drain::{
    choose, namespace_policies, namespaces_of, pods_on, Drainer, PodOutcome, Policy,
};
use tokio::time::Instant;

const NODE: &str = "ip-10-0-1-5.ec2.internal";
const START_MS: u64 = 1_800_000_000_000;

fn pod(namespace: &str, name: &str, grace_s: i64) -> PodInfo {
    PodInfo {
        namespace: namespace.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        node: NODE.into(),
        grace_s: Some(grace_s),
        ..PodInfo::default()
    }
}

fn refuses(times: Option<u32>, budget: &str) -> Budget {
    Budget::Refuses {
        times,
        // The 429's `DisruptionBudget` cause, as the API server words it (eviction.go).
        reason: format!("The disruption budget {budget} needs 2 healthy pods and has 2 currently"),
    }
}

/// A drainer over `pods` whose deadline is `left_ms` away.
fn drainer(pods: &FakePods, left_ms: u64) -> Drainer<FakePods> {
    Drainer {
        client: pods.clone(),
        clock: Arc::new(PausedClock::at(START_MS)),
        deadline_ms: START_MS + left_ms,
    }
}

/// Chooses the node's pods as the function does, then drains them.
async fn drain(pods: &FakePods, left_ms: u64) -> spot::drain::DrainReport {
    let on_node = pods_on(pods, NODE).await.unwrap();
    let policies = namespace_policies(pods, &namespaces_of(&on_node)).await;
    let (candidates, left) = choose(&on_node, &policies, Policy::OverrideAtDeadline);
    drainer(pods, left_ms).drain(candidates, left).await
}

fn outcome<'a>(report: &'a spot::drain::DrainReport, label: &str) -> &'a PodOutcome {
    report
        .pods
        .iter()
        .find(|p| match p {
            PodOutcome::Evicted { pod, .. }
            | PodOutcome::Gone { pod }
            | PodOutcome::Forced { pod, .. }
            | PodOutcome::Blocked { pod, .. } => pod == label,
        })
        .unwrap_or_else(|| panic!("no outcome for {label}: {report:?}"))
}

#[tokio::test(start_paused = true)]
async fn a_budget_that_refuses_a_while_is_asked_again_until_it_allows() {
    // GIVEN a workload pod whose budget refuses three evictions, then allows
    let pods = FakePods::default();
    pods.add(pod("shop", "web-0", 5))
        .budget("shop/web-0", refuses(Some(3), "web"));
    // WHEN the node is drained with 60 s left
    let report = drain(&pods, 60_000).await;
    // THEN the pod is evicted after three refusals, and gone well inside the deadline
    assert_eq!(
        outcome(&report, "shop/web-0"),
        &PodOutcome::Evicted {
            pod: "shop/web-0".into(),
            refusals: 3,
            held_by: Some(
                "The disruption budget web needs 2 healthy pods and has 2 currently".into()
            ),
        }
    );
    assert_eq!(pods.calls_of("evict").len(), 4);
    assert!(pods.calls_of("delete").is_empty());
    assert!(!report.deadline_missed);
    assert!(report.took_ms < 10_000, "{report:?}");
    assert!(pods.present().is_empty());
    // AND after each refusal it watched the budget the refusal named, and asked again the moment
    // the budget allowed (a replacement Ready), with no backoff on top: three waits of
    // REPLACEMENT_READY, then the 5 s of grace.
    assert_eq!(pods.calls_of("budget"), vec!["budget shop/web"; 3]);
    let evicted_ms = report.timings[0].settled_ms - START_MS;
    assert_eq!(
        evicted_ms,
        3 * REPLACEMENT_READY.as_millis() as u64,
        "{report:?}"
    );
    assert_eq!(report.took_ms, evicted_ms + 5_000, "{report:?}");
}

/// The fake pods, whose budgets all say at once that they allow a disruption (what a misread
/// budget name, or a webhook's 429 worded as a budget's, looks like to the drainer).
#[derive(Clone)]
struct AllowingAtOnce(FakePods);

impl Pods for AllowingAtOnce {
    async fn on_node(&self, node: &str) -> breakwater::Result<Vec<PodInfo>> {
        self.0.on_node(node).await
    }
    async fn namespace_annotations(
        &self,
        namespace: &str,
    ) -> breakwater::Result<Option<std::collections::BTreeMap<String, String>>> {
        self.0.namespace_annotations(namespace).await
    }
    async fn evict(&self, namespace: &str, name: &str, uid: &str) -> breakwater::Result<Eviction> {
        self.0.evict(namespace, name, uid).await
    }
    async fn delete(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        grace_s: i64,
    ) -> breakwater::Result<Deletion> {
        self.0.delete(namespace, name, uid, grace_s).await
    }
    async fn gone(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        wait: Duration,
    ) -> breakwater::Result<bool> {
        self.0.gone(namespace, name, uid, wait).await
    }
    async fn budget_allows(&self, _: &str, _: &str, _: Duration) -> breakwater::Result<Waited> {
        Ok(Waited::Already)
    }
}

#[tokio::test(start_paused = true)]
async fn a_budget_that_allows_at_once_while_its_pod_is_refused_falls_back_to_the_backoff() {
    // GIVEN a pod refused four times by a budget whose watch says at once that it allows
    let pods = FakePods::default();
    pods.add(pod("shop", "web-0", 0))
        .budget("shop/web-0", refuses(Some(4), "web"));
    let drainer = Drainer {
        client: AllowingAtOnce(pods.clone()),
        clock: Arc::new(PausedClock::at(START_MS)),
        deadline_ms: START_MS + 60_000,
    };
    // WHEN the node is drained
    let on_node = pods_on(&pods, NODE).await.unwrap();
    let (candidates, left) = choose(&on_node, &Default::default(), Policy::OverrideAtDeadline);
    let report = drainer.drain(candidates, left).await;
    // THEN the first "allowed at once" is believed (asked again at once), the second is not: the
    // next asks wait for the backoff of their attempts (500 ms, 1 s, 2 s, jittered ±20 %), so the
    // pod is evicted after about 3.5 s of pauses rather than in a loop of asks at no cost of time
    assert!(matches!(
        outcome(&report, "shop/web-0"),
        PodOutcome::Evicted { refusals: 4, .. }
    ));
    assert_eq!(pods.calls_of("evict").len(), 5);
    let evicted_ms = report.timings[0].settled_ms - START_MS;
    assert!((2_800..=4_200).contains(&evicted_ms), "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn a_budget_that_cannot_be_watched_is_asked_again_after_a_backoff() {
    // GIVEN a pod whose budget refuses once, and a watch of it that fails (say, RBAC)
    let pods = FakePods::default();
    pods.add(pod("shop", "web-0", 0))
        .budget("shop/web-0", refuses(Some(1), "web"))
        .fail_next(
            "budget",
            Error::Forbidden("watch poddisruptionbudgets".into()),
        );
    // WHEN the node is drained
    let report = drain(&pods, 60_000).await;
    // THEN the pod is asked again after the first backoff (250 ms, jittered), and evicted
    assert!(matches!(
        outcome(&report, "shop/web-0"),
        PodOutcome::Evicted { refusals: 1, .. }
    ));
    assert_eq!(pods.calls_of("budget"), vec!["budget shop/web"]);
    let evicted_ms = report.timings[0].settled_ms - START_MS;
    assert!((200..=300).contains(&evicted_ms), "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn a_budget_that_never_allows_is_overridden_at_the_deadline_less_the_grace_and_named() {
    // GIVEN a ledger pod (5 s of grace) whose budget never allows, and a vault pod that respects
    // its budget, with 8 s left before the deadline
    let pods = FakePods::default();
    pods.add(pod("money", "ledger-0", 5))
        .budget("money/ledger-0", refuses(None, "ledger"));
    let mut vault = pod("money", "vault-0", 5);
    vault
        .annotations
        .insert(spot::drain::POLICY_ANNOTATION.into(), "respect-pdb".into());
    pods.add(vault)
        .budget("money/vault-0", refuses(None, "vault"));
    let started = Instant::now();
    // WHEN the node is drained
    let report = drain(&pods, 8_000).await;
    // THEN the drain ends at the deadline, not later (paused time: exactly)
    assert_eq!(started.elapsed(), Duration::from_millis(8_000));
    assert_eq!(report.took_ms, 8_000);
    // AND the ledger pod was deleted over its budget at 3 s with its whole grace, the budget named
    match outcome(&report, "money/ledger-0") {
        PodOutcome::Forced {
            grace_s,
            blocked_by,
            policy,
            ..
        } => {
            assert_eq!(*grace_s, 5);
            assert!(blocked_by
                .as_deref()
                .unwrap()
                .contains("disruption budget ledger"));
            assert_eq!(*policy, Policy::OverrideAtDeadline);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        pods.calls_of("delete"),
        vec!["delete money/ledger-0 grace 5"]
    );
    // AND the vault pod was never deleted: blocked at the deadline by its budget, reported
    match outcome(&report, "money/vault-0") {
        PodOutcome::Blocked { reason, .. } => assert!(reason.contains("vault"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(pods.present().contains(&"money/vault-0".to_string()));
    assert!(!pods.terminating("money/vault-0"));
    assert!(report.deadline_missed);
    // AND the report's lanes say when each settled and which budget held it (named from the
    // cause's message), for the picture against the deadline
    let lanes = report.lanes();
    let lane = |pod: &str| lanes.iter().find(|l| l.pod == pod).unwrap();
    let ledger = lane("money/ledger-0");
    assert_eq!(
        (ledger.outcome.as_str(), ledger.held_by.as_deref()),
        ("forced", Some("PDB ledger"))
    );
    assert_eq!(
        (ledger.asked_ms, ledger.settled_ms),
        (START_MS, START_MS + 3_000)
    );
    // … and gone when its 5 s of grace had passed
    assert_eq!(ledger.gone_ms, Some(START_MS + 8_000), "{ledger:?}");
    let vault = lane("money/vault-0");
    assert_eq!(
        (vault.outcome.as_str(), vault.held_by.as_deref()),
        ("blocked", Some("PDB vault"))
    );
    assert_eq!((vault.settled_ms, vault.gone_ms), (START_MS + 8_000, None));
    assert_eq!(report.deadline_ms, START_MS + 8_000);
}

#[tokio::test(start_paused = true)]
async fn the_forced_grace_is_clamped_to_the_time_left() {
    // GIVEN a pod with 30 s of grace whose budget never allows, and only 10 s left
    let pods = FakePods::default();
    pods.add(pod("shop", "slow-0", 30))
        .budget("shop/slow-0", refuses(None, "slow"));
    // WHEN the node is drained
    let report = drain(&pods, 10_000).await;
    // THEN it is deleted at once (its moment has passed) with the 10 s that are left
    match outcome(&report, "shop/slow-0") {
        PodOutcome::Forced { grace_s, .. } => assert_eq!(*grace_s, 10),
        other => panic!("{other:?}"),
    }
    assert_eq!(pods.calls_of("evict").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_delete_now_pod_is_deleted_at_once_without_asking_its_budget() {
    // GIVEN a namespace whose pods are to be deleted at once
    let pods = FakePods::default();
    pods.namespace("scratch", &[(spot::drain::POLICY_ANNOTATION, "delete-now")])
        .add(pod("scratch", "tmp-0", 3))
        .budget("scratch/tmp-0", refuses(None, "tmp"));
    // WHEN the node is drained
    let report = drain(&pods, 60_000).await;
    // THEN the pod is deleted with its grace, no eviction asked, nothing blocked it
    assert_eq!(
        outcome(&report, "scratch/tmp-0"),
        &PodOutcome::Forced {
            pod: "scratch/tmp-0".into(),
            grace_s: 3,
            blocked_by: None,
            policy: Policy::DeleteNow
        }
    );
    assert!(pods.calls_of("evict").is_empty());
    assert!(!report.deadline_missed);
}

#[tokio::test(start_paused = true)]
async fn pods_already_gone_or_replaced_are_reported_gone_and_nothing_is_deleted() {
    // GIVEN two chosen pods: one deleted by someone else since, one replaced under its name
    let pods = FakePods::default();
    let gone = pod("shop", "web-0", 5);
    let replaced = pod("shop", "web-1", 5);
    let mut successor = replaced.clone();
    successor.uid = "uid-web-1-new".into();
    pods.add(successor);
    let (candidates, left) = choose(
        &[gone, replaced],
        &Default::default(),
        Policy::OverrideAtDeadline,
    );
    // WHEN they are drained
    let report = drainer(&pods, 60_000).drain(candidates, left).await;
    // THEN both are gone, the successor is untouched, and nothing was missed
    assert_eq!(
        outcome(&report, "shop/web-0"),
        &PodOutcome::Gone {
            pod: "shop/web-0".into()
        }
    );
    assert_eq!(
        outcome(&report, "shop/web-1"),
        &PodOutcome::Gone {
            pod: "shop/web-1".into()
        }
    );
    assert!(!pods.terminating("shop/web-1"));
    assert!(pods.calls_of("delete").is_empty());
    assert!(!report.deadline_missed);
}

#[tokio::test(start_paused = true)]
async fn daemonset_mirror_finished_and_terminating_pods_are_left_alone() {
    // GIVEN a node with a workload pod and four pods a drain must not touch
    let pods = FakePods::default();
    pods.add(pod("shop", "web-0", 5));
    let mut ds = pod("kube-system", "node-exporter-x", 5);
    ds.controller_kind = Some("DaemonSet".into());
    let mut mirror = pod("kube-system", "kube-proxy", 5);
    mirror
        .annotations
        .insert("kubernetes.io/config.mirror".into(), "x".into());
    let mut finished = pod("batch", "report", 5);
    finished.phase = Some("Succeeded".into());
    let mut leaving = pod("shop", "old-0", 5);
    leaving.terminating = true;
    for p in [ds, mirror, finished, leaving] {
        pods.add(p);
    }
    // WHEN the node is drained
    let report = drain(&pods, 60_000).await;
    // THEN only the workload pod was evicted; the others are reported with why
    assert_eq!(pods.calls_of("evict"), vec!["evict shop/web-0"]);
    assert_eq!(report.evicted(), 1);
    assert_eq!(report.left_alone.len(), 4, "{:?}", report.left_alone);
    for why in [
        "DaemonSet pod",
        "mirror pod",
        "finished",
        "already terminating",
    ] {
        assert!(report.left_alone.iter().any(|l| l.ends_with(why)), "{why}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_pod_under_two_budgets_is_escalated_and_forced_at_the_deadline_less_the_grace() {
    // GIVEN a pod covered by two budgets (the API server answers 500 to its evictions)
    let pods = FakePods::default();
    pods.add(pod("shop", "cart-0", 5))
        .budget("shop/cart-0", Budget::Multiple);
    // WHEN the node is drained with 20 s left
    let report = drain(&pods, 20_000).await;
    // THEN it was escalated (once) and deleted at deadline − grace, with its whole grace
    assert!(!pods.calls_of("evict").is_empty());
    assert_eq!(report.escalations.len(), 1);
    assert!(report.escalations[0].starts_with("shop/cart-0"));
    assert!(matches!(
        outcome(&report, "shop/cart-0"),
        PodOutcome::Forced { grace_s: 5, .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn system_critical_pods_wait_for_blocked_workloads_only_until_their_cut_off() {
    // GIVEN a workload that respects a budget that never allows, and a system-critical pod,
    // with 60 s left (the critical tier's cut-off is the deadline − 25 s: 35 s from now)
    let pods = FakePods::default();
    let mut careful = pod("shop", "db-0", 5);
    careful
        .annotations
        .insert(spot::drain::POLICY_ANNOTATION.into(), "respect-pdb".into());
    pods.add(careful).budget("shop/db-0", refuses(None, "db"));
    let mut dns = pod("kube-system", "coredns-0", 5);
    dns.priority_class = Some("system-cluster-critical".into());
    pods.add(dns);
    let watched = pods.clone();
    // WHEN the drain runs
    let running = tokio::spawn(async move { drain(&watched, 60_000).await });
    // THEN the critical pod is untouched before its cut-off …
    tokio::time::sleep(Duration::from_millis(34_900)).await;
    assert!(pods.calls_of("evict kube-system").is_empty());
    // … and evicted right at it
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        pods.calls_of("evict kube-system"),
        vec!["evict kube-system/coredns-0"]
    );
    let report = running.await.unwrap();
    assert!(matches!(
        outcome(&report, "kube-system/coredns-0"),
        PodOutcome::Evicted { .. }
    ));
    assert!(matches!(
        outcome(&report, "shop/db-0"),
        PodOutcome::Blocked { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_throttled_eviction_waits_as_the_server_asks_and_is_no_refusal() {
    // GIVEN an API server that throttles the next two evictions (Retry-After 1 s)
    let pods = FakePods::default();
    pods.add(pod("shop", "web-0", 0)).throttle(2);
    let started = Instant::now();
    // WHEN the node is drained
    let report = drain(&pods, 60_000).await;
    // THEN the pod is evicted on the third try, about 2 s later, with no refusal counted
    assert_eq!(
        outcome(&report, "shop/web-0"),
        &PodOutcome::Evicted {
            pod: "shop/web-0".into(),
            refusals: 0,
            held_by: None,
        }
    );
    assert_eq!(pods.calls_of("evict").len(), 3);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1_600) && took <= Duration::from_millis(2_500),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_forced_delete_that_fails_for_a_moment_is_sent_again() {
    // GIVEN a delete-now pod and an API server that fails the next delete with a 503
    let pods = FakePods::default();
    let mut p = pod("shop", "web-0", 5);
    p.annotations
        .insert(spot::drain::POLICY_ANNOTATION.into(), "delete-now".into());
    pods.add(p)
        .fail_next("delete", Error::Retryable("503".into()));
    // WHEN the node is drained
    let report = drain(&pods, 60_000).await;
    // THEN the delete was sent twice and the pod forced
    assert_eq!(pods.calls_of("delete").len(), 2);
    assert!(matches!(
        outcome(&report, "shop/web-0"),
        PodOutcome::Forced { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn an_evicted_pod_still_terminating_at_the_deadline_is_reported() {
    // GIVEN a pod with 30 s of grace and only 10 s left
    let pods = FakePods::default();
    pods.add(pod("shop", "slow-0", 30));
    // WHEN the node is drained
    let report = drain(&pods, 10_000).await;
    // THEN it was evicted, but still terminates at the deadline: the deadline was missed
    assert!(matches!(
        outcome(&report, "shop/slow-0"),
        PodOutcome::Evicted { .. }
    ));
    assert_eq!(report.still_terminating, vec!["shop/slow-0".to_string()]);
    assert!(report.deadline_missed);
    assert_eq!(report.took_ms, 10_000);
}

#[tokio::test(start_paused = true)]
async fn an_eviction_the_server_refuses_for_good_blocks_the_pod_at_once() {
    // GIVEN an API server that forbids the eviction
    let pods = FakePods::default();
    pods.add(pod("shop", "web-0", 5)).fail_next(
        "evict",
        Error::Forbidden("pods/eviction is forbidden".into()),
    );
    // WHEN the node is drained
    let report = drain(&pods, 60_000).await;
    // THEN the pod is blocked with the reason, never deleted
    match outcome(&report, "shop/web-0") {
        PodOutcome::Blocked { reason, .. } => assert!(reason.contains("forbidden"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(pods.calls_of("delete").is_empty());
    assert!(report.deadline_missed);
}
