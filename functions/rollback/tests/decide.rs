//! The rollback decision as stories, on the in-memory workloads fake and paused time: which
//! revision an alarm or a person takes a Deployment back to (the last known good), what the
//! guard-rails refuse, and an Argo Rollout's abort.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use breakwater::fakes::workloads::FakeWorkloads;
use breakwater::kube::rollout::TEMPLATE_HASH;
use breakwater::kube::workloads::{ObjectAt, Resource};
use rollback::decide::{self, before_reading, target, Asker, Request, Rules};
use rollback::gitops::{self, ArgoCd, SUSPENDED};
use rollback::record::{Decision, Intent, Marked, Outcome, WorkloadRecord};
use rollback::undo::{history, Revision};
use rollback::workload::{Kind, Workload};
use serde_json::{json, Value};

const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
/// 2026-11-23T00:00:00Z.
const T0: u64 = 1_795_392_000_000;

const RULES: Rules = Rules {
    lookback_ms: 60 * MINUTE,
    bake_ms: 30 * MINUTE,
    cooldown_ms: 15 * MINUTE,
    dry_run: false,
};

fn template(image: &str, hash: Option<&str>) -> Value {
    let mut labels = json!({"app": "web"});
    if let Some(h) = hash {
        labels[TEMPLATE_HASH] = json!(h);
    }
    json!({"metadata": {"labels": labels},
        "spec": {"containers": [{"name": "web", "image": image}]}})
}

/// The Deployment `shop/web` at revision `images.len()`, one ReplicaSet per image, created at
/// the given times.
fn deployment_with_history(fake: &FakeWorkloads, images: &[(&str, u64)]) {
    let (current, _) = images.last().unwrap();
    fake.put_deployment(
        "prod",
        json!({"metadata": {"name": "web", "namespace": "shop", "uid": "d1", "generation": 1,
                "annotations": {"deployment.kubernetes.io/revision": images.len().to_string()}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": template(current, None)}}),
    );
    for (i, (image, created)) in images.iter().enumerate() {
        let hash = format!("h{}", i + 1);
        fake.put_replica_set(
            "prod",
            json!({"metadata": {"name": format!("web-{hash}"), "namespace": "shop",
                    "labels": {"app": "web", TEMPLATE_HASH: hash},
                    "annotations": {"deployment.kubernetes.io/revision": (i + 1).to_string()},
                    "ownerReferences": [{"uid": "d1", "controller": true}],
                    "creationTimestamp": breakwater::clock::rfc3339(*created)},
                "spec": {"template": template(image, Some(&hash))}}),
        );
    }
}

fn web() -> Workload {
    Workload::new("prod", "shop", Kind::Deployment, "web").unwrap()
}

fn image_now(fake: &FakeWorkloads) -> Value {
    fake.deployment_now(web().at()).unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
        .clone()
}

fn request(workload: Workload, asker: Asker, to_revision: Option<i64>) -> Request {
    Request {
        workload,
        asker,
        to_revision,
        event_id: "e1".into(),
    }
}

fn alarm(since_ms: u64) -> Asker {
    Asker::Alarm {
        name: "web-p95".into(),
        since_ms,
    }
}

fn decision(request: &Request, now: u64) -> Decision {
    let id = format!("{}@{}", request.event_id, request.workload);
    Decision::undecided(&id, request, now)
}

/// Decides a Deployment's request on `fake` at `now`; the intents it wrote (the record's GitOps
/// suspension is in `record`).
async fn decide_deployment(
    fake: &FakeWorkloads,
    request: &Request,
    record: &mut WorkloadRecord,
    now: u64,
) -> (Outcome, String, Decision, Vec<Intent>) {
    let mut d = decision(request, now);
    let intents = Arc::new(Mutex::new(Vec::new()));
    let written = intents.clone();
    let persist = move |r: WorkloadRecord| {
        written.lock().unwrap().extend(r.intent);
        async { Ok(()) }
    };
    let (outcome, reason) = decide::deployment(
        fake,
        &ArgoCd::default(),
        request,
        record,
        &mut d,
        now,
        &RULES,
        Instant::now(),
        persist,
    )
    .await
    .unwrap();
    let intents = intents.lock().unwrap().clone();
    (outcome, reason, d, intents)
}

#[tokio::test(start_paused = true)]
async fn an_alarm_rolls_back_to_the_newest_revision_that_survived_its_bake_time() {
    // GIVEN web:1 ran two hours, web:2 only five minutes before web:3 was deployed
    let fake = FakeWorkloads::default();
    let deployed = T0 + 2 * HOUR + 5 * MINUTE;
    deployment_with_history(
        &fake,
        &[("web:1", T0), ("web:2", T0 + 2 * HOUR), ("web:3", deployed)],
    );
    let mut record = WorkloadRecord::default();
    // WHEN web:3's alarm fires ten minutes after its deploy
    let request = request(web(), alarm(deployed + 5 * MINUTE), None);
    let (outcome, reason, d, intents) =
        decide_deployment(&fake, &request, &mut record, deployed + 10 * MINUTE).await;
    // THEN the Deployment is back on web:1, the last known good, in one patch
    assert_eq!(outcome, Outcome::RolledBack, "{reason}");
    assert!(reason.contains("last known good"), "{reason}");
    assert_eq!((d.from_revision, d.to_revision), (Some(3), Some(1)));
    assert_eq!(image_now(&fake), "web:1");
    assert_eq!(fake.writes(), ["patch shop/web"]);
    // AND web:3 is remembered as bad, and the intent was written before the patch
    assert_eq!(
        record.bad.iter().map(|m| m.revision).collect::<Vec<_>>(),
        [3]
    );
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0].to_revision, 1);
    assert_eq!(record.intent, None);
}

#[tokio::test(start_paused = true)]
async fn a_deploy_landing_between_the_read_and_the_patch_makes_the_decision_read_again() {
    // GIVEN a bad web:2 whose alarm fires, and a deploy that moves the Deployment on just
    // before the first patch arrives
    let fake = FakeWorkloads::default();
    deployment_with_history(&fake, &[("web:1", T0), ("web:2", T0 + 2 * HOUR)]);
    fake.change_before_next_patch();
    let mut record = WorkloadRecord::default();
    // WHEN the alarm's rollback is decided
    let request = request(web(), alarm(T0 + 2 * HOUR + MINUTE), None);
    let (outcome, reason, _, intents) =
        decide_deployment(&fake, &request, &mut record, T0 + 2 * HOUR + 2 * MINUTE).await;
    // THEN the first patch is refused by its test, and the second, decided again, lands
    assert_eq!(outcome, Outcome::RolledBack, "{reason}");
    assert_eq!(fake.writes(), ["patch shop/web", "patch shop/web"]);
    assert_eq!(intents.len(), 2);
    assert_eq!(image_now(&fake), "web:1");
}

#[tokio::test(start_paused = true)]
async fn an_alarm_that_began_before_the_rollout_is_not_the_deploys_fault() {
    // GIVEN web:2 deployed an hour after web:1
    let fake = FakeWorkloads::default();
    deployment_with_history(&fake, &[("web:1", T0), ("web:2", T0 + HOUR)]);
    let mut record = WorkloadRecord::default();
    // WHEN an alarm that began before web:2 arrives
    let request = request(web(), alarm(T0 + HOUR - MINUTE), None);
    let (outcome, reason, _, _) =
        decide_deployment(&fake, &request, &mut record, T0 + HOUR + MINUTE).await;
    // THEN nothing is done, nothing is marked bad
    assert_eq!(outcome, Outcome::NotActing);
    assert!(reason.contains("not the deploy's fault"), "{reason}");
    assert!(fake.writes().is_empty());
    assert!(record.bad.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_paused_deployment_is_refused_and_nothing_is_written() {
    // GIVEN a paused Deployment
    let fake = FakeWorkloads::default();
    deployment_with_history(&fake, &[("web:1", T0), ("web:2", T0 + HOUR)]);
    let mut paused = fake.deployment_now(web().at()).unwrap();
    paused["spec"]["paused"] = json!(true);
    fake.put_deployment("prod", paused);
    // WHEN a person asks for a rollback
    let request = request(web(), Asker::Person("slack:U1 (alice)".into()), None);
    let mut record = WorkloadRecord::default();
    let (outcome, reason, _, intents) =
        decide_deployment(&fake, &request, &mut record, T0 + 2 * HOUR).await;
    // THEN it is refused with the way out, and nothing is written
    assert_eq!(outcome, Outcome::Refused);
    assert!(reason.contains("kubectl rollout resume"), "{reason}");
    assert!(fake.writes().is_empty() && intents.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_patch_an_earlier_attempt_sent_is_recorded_not_sent_again() {
    // GIVEN an earlier attempt of this decision wrote its intent, patched to web:1, and died
    let fake = FakeWorkloads::default();
    deployment_with_history(&fake, &[("web:1", T0), ("web:2", T0 + HOUR)]);
    let mut back = fake.deployment_now(web().at()).unwrap();
    back["spec"]["template"] = template("web:1", None);
    fake.put_deployment("prod", back);
    let request = request(web(), alarm(T0 + HOUR + MINUTE), None);
    let mut record = WorkloadRecord {
        intent: Some(Intent {
            decision: decision(&request, 0).id,
            from_revision: Some(2),
            to_revision: 1,
            to_hash: "h1".into(),
        }),
        ..WorkloadRecord::default()
    };
    // WHEN the retry decides
    let (outcome, reason, d, _) =
        decide_deployment(&fake, &request, &mut record, T0 + HOUR + 2 * MINUTE).await;
    // THEN the rollback is recorded as made, and no second patch is sent
    assert_eq!(outcome, Outcome::RolledBack, "{reason}");
    assert_eq!((d.from_revision, d.to_revision), (Some(2), Some(1)));
    assert!(fake.writes().is_empty());
}

/// Decides a Rollout's request on `fake` at `now`.
async fn decide_rollout(
    fake: &FakeWorkloads,
    request: &Request,
    record: &mut WorkloadRecord,
    now: u64,
) -> (Outcome, String, Decision) {
    let mut d = decision(request, now);
    let (outcome, reason) =
        decide::rollout(fake, request, record, &mut d, now, &RULES, Instant::now())
            .await
            .unwrap();
    (outcome, reason, d)
}

#[tokio::test(start_paused = true)]
async fn a_canary_in_progress_is_aborted_and_its_revision_marked_bad() {
    // GIVEN a Rollout at 20 % canary
    let fake = FakeWorkloads::default();
    let canary = json!({"metadata": {"name": "web", "namespace": "shop",
            "annotations": {"rollout.argoproj.io/revision": "2"}},
        "status": {"phase": "Paused", "currentPodHash": "c2", "stableRS": "s1"}});
    fake.put_rollout("prod", canary);
    let rollout = Workload::new("prod", "shop", Kind::Rollout, "web").unwrap();
    let request = request(rollout.clone(), alarm(T0), None);
    // WHEN its alarm is decided
    let mut record = WorkloadRecord::default();
    let (outcome, reason, d) = decide_rollout(&fake, &request, &mut record, T0).await;
    // THEN it is aborted back to the stable ReplicaSet, and the canary's revision is remembered
    assert_eq!(outcome, Outcome::Aborted, "{reason}");
    assert_eq!(d.from_revision, Some(2));
    assert_eq!(
        fake.rollout_now(rollout.at()).unwrap()["status"]["abort"],
        true
    );
    assert_eq!(record.bad, [marked("c2", 2)]);
    // GIVEN a promoted Rollout with no ReplicaSets to judge WHEN decided THEN nothing is sent
    let stable = FakeWorkloads::default();
    stable.put_rollout(
        "prod",
        json!({"metadata": {"name": "web", "namespace": "shop"},
        "status": {"currentPodHash": "s1", "stableRS": "s1"}}),
    );
    let (outcome, _, _) =
        decide_rollout(&stable, &request, &mut WorkloadRecord::default(), T0).await;
    assert_eq!(outcome, Outcome::NotActing);
    assert!(stable.writes().is_empty());
}

/// A Rollout `shop/web` fully promoted to the last of `images`, one ReplicaSet per image (hash
/// `r<n>`), created at the given times.
fn promoted_rollout(fake: &FakeWorkloads, images: &[(&str, u64)]) {
    let n = images.len();
    let template = |image: &str| template(image, None);
    fake.put_rollout(
        "prod",
        json!({"metadata": {"name": "web", "namespace": "shop", "uid": "ro1",
                "annotations": {"rollout.argoproj.io/revision": n.to_string()}},
            "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}},
                "template": template(images[n - 1].0)},
            "status": {"phase": "Healthy", "currentPodHash": format!("r{n}"),
                "stableRS": format!("r{n}")}}),
    );
    for (i, (image, created)) in images.iter().enumerate() {
        let hash = format!("r{}", i + 1);
        let mut t = template(image);
        t["metadata"]["labels"]["rollouts-pod-template-hash"] = json!(hash);
        fake.put_replica_set(
            "prod",
            json!({"metadata": {"name": format!("web-{hash}"), "namespace": "shop",
                    "labels": {"app": "web", "rollouts-pod-template-hash": hash},
                    "annotations": {"rollout.argoproj.io/revision": (i + 1).to_string()},
                    "ownerReferences": [{"uid": "ro1", "controller": true}],
                    "creationTimestamp": breakwater::clock::rfc3339(*created)},
                "spec": {"template": t}}),
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_fully_promoted_rollout_is_rolled_back_past_revisions_that_alarmed_and_promoted_at_once()
{
    // GIVEN web:1 and web:2 each ran for hours, but web:2 tripped an alarm once (remembered in
    // the registry), and web:3 was fully promoted 5 minutes ago
    let fake = FakeWorkloads::default();
    let promoted_at = T0 + 4 * HOUR;
    promoted_rollout(
        &fake,
        &[
            ("web:1", T0),
            ("web:2", T0 + 2 * HOUR),
            ("web:3", promoted_at),
        ],
    );
    let rollout = Workload::new("prod", "shop", Kind::Rollout, "web").unwrap();
    let mut record = WorkloadRecord {
        bad: vec![marked("r2", 2)],
        ..WorkloadRecord::default()
    };
    // AND the Argo Rollouts controller, which takes a new template a moment later (its new
    // revision's hash current, the generation observed)
    let controller = fake.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let mut r = controller
                .rollout_now(
                    Workload::new("prod", "shop", Kind::Rollout, "web")
                        .unwrap()
                        .at(),
                )
                .unwrap();
            if r["spec"]["template"] == template("web:1", None) {
                r["status"]["currentPodHash"] = json!("r1");
                r["status"]["observedGeneration"] = json!(r["metadata"]["generation"].to_string());
                controller.put_rollout("prod", r);
                break;
            }
        }
    });
    // WHEN its alarm fires
    let request = request(rollout.clone(), alarm(promoted_at + MINUTE), None);
    let (outcome, reason, d) =
        decide_rollout(&fake, &request, &mut record, promoted_at + 5 * MINUTE).await;

    // THEN it goes back to web:1 (web:2 alarmed), as `kubectl argo rollouts undo --to-revision`
    // would, and is promoted at once instead of walking the canary steps again (#2168)
    assert_eq!(outcome, Outcome::RolledBack, "{reason}");
    assert_eq!((d.from_revision, d.to_revision), (Some(3), Some(1)));
    assert_eq!(d.to_hash.as_deref(), Some("r1"));
    assert_eq!(
        fake.writes(),
        ["patch Rollout shop/web", "promote shop/web"]
    );
    let now = fake.rollout_now(rollout.at()).unwrap();
    assert_eq!(
        now["spec"]["template"],
        template("web:1", None),
        "no rollouts-pod-template-hash"
    );
    assert_eq!(now["status"]["promoteFull"], true);
    assert!(
        record.bad.iter().any(|m| m.hash == "r3"),
        "web:3 is remembered bad"
    );
    // WHEN a person asks for web:2 THEN it is refused: it alarmed
    let ask = self::request(rollout, Asker::Person("slack:U1".into()), Some(2));
    let (outcome, reason, _) =
        decide_rollout(&fake, &ask, &mut record, promoted_at + 6 * MINUTE).await;
    assert_eq!(outcome, Outcome::Refused, "{reason}");
    assert!(reason.contains("tripped alarm"), "{reason}");
}

fn revisions(created: &[u64]) -> Vec<Revision> {
    let fake = FakeWorkloads::default();
    let images: Vec<(String, u64)> = created
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("web:{}", i + 1), *t))
        .collect();
    let images: Vec<(&str, u64)> = images.iter().map(|(i, t)| (i.as_str(), *t)).collect();
    deployment_with_history(&fake, &images);
    let d = fake.deployment_now(web().at()).unwrap();
    let sets: Vec<Value> = (1..=created.len())
        .map(|i| {
            json!({"metadata": {"name": format!("web-h{i}"), "labels": {TEMPLATE_HASH: format!("h{i}")},
                "annotations": {"deployment.kubernetes.io/revision": i.to_string()},
                "ownerReferences": [{"uid": "d1", "controller": true}],
                "creationTimestamp": breakwater::clock::rfc3339(created[i - 1])},
                "spec": {"template": template(&format!("web:{i}"), Some(&format!("h{i}")))}})
        })
        .collect();
    history(&d, &sets)
}

fn marked(hash: &str, revision: i64) -> Marked {
    Marked {
        hash: hash.into(),
        revision,
        alarm: "web-p95".into(),
        at_ms: T0,
    }
}

#[test]
fn the_newest_revision_that_survived_its_bake_and_never_alarmed_is_chosen() {
    // GIVEN revisions 1 to 3 each ran an hour, 4 is running, and 3 once alarmed
    let h = revisions(&[T0, T0 + HOUR, T0 + 2 * HOUR, T0 + 3 * HOUR]);
    let record = WorkloadRecord {
        bad: vec![marked("h3", 3)],
        ..WorkloadRecord::default()
    };
    // WHEN the target is chosen for the running revision 4
    let (t, why) = target(None, &h, h.last(), &record, RULES.bake_ms).unwrap();
    // THEN it is revision 2: 3 alarmed, 4 is the one running
    assert_eq!(t.number, 2);
    assert!(why.starts_with("last known good"));
}

#[test]
fn with_no_revision_surviving_its_bake_the_previous_one_is_chosen_if_it_never_alarmed() {
    // GIVEN three revisions five minutes apart
    let h = revisions(&[T0, T0 + 5 * MINUTE, T0 + 10 * MINUTE]);
    // WHEN the target is chosen THEN it is the previous revision
    let (t, why) = target(
        None,
        &h,
        h.last(),
        &WorkloadRecord::default(),
        RULES.bake_ms,
    )
    .unwrap();
    assert_eq!(t.number, 2);
    assert!(why.starts_with("the previous revision"));
    // AND a rollback onto revision 1 once verified makes it the last known good
    let verified = WorkloadRecord {
        good: vec!["h1".into()],
        ..WorkloadRecord::default()
    };
    assert_eq!(
        target(None, &h, h.last(), &verified, RULES.bake_ms)
            .unwrap()
            .0
            .number,
        1
    );
    // AND when the previous one alarmed too, nothing is known good
    let bad = WorkloadRecord {
        bad: vec![marked("h2", 2)],
        ..WorkloadRecord::default()
    };
    let (outcome, _) = target(None, &h, h.last(), &bad, RULES.bake_ms).unwrap_err();
    assert_eq!(outcome, Outcome::NotActing);
}

#[test]
fn a_person_cannot_roll_back_onto_a_revision_that_tripped_an_alarm_or_is_not_in_the_history() {
    // GIVEN revision 1 once tripped an alarm
    let h = revisions(&[T0, T0 + HOUR]);
    let record = WorkloadRecord {
        bad: vec![marked("h1", 1)],
        ..WorkloadRecord::default()
    };
    // WHEN a person asks for revision 1, or 9 THEN both are refused
    let (outcome, why) = target(Some(1), &h, h.last(), &record, RULES.bake_ms).unwrap_err();
    assert_eq!(outcome, Outcome::Refused);
    assert!(why.contains("tripped alarm web-p95"), "{why}");
    let (outcome, _) = target(Some(9), &h, h.last(), &record, RULES.bake_ms).unwrap_err();
    assert_eq!(outcome, Outcome::Refused);
    // AND with one revision only there is nothing to go back to
    let one = revisions(&[T0]);
    let (outcome, _) = target(
        None,
        &one,
        one.last(),
        &WorkloadRecord::default(),
        RULES.bake_ms,
    )
    .unwrap_err();
    assert_eq!(outcome, Outcome::NotActing);
}

#[test]
fn a_frozen_workload_and_the_cool_down_stop_a_rollback_before_the_cluster_is_read() {
    // GIVEN a rollback ten minutes ago, with a fifteen-minute cool-down
    let record = WorkloadRecord {
        last_rollback_ms: Some(T0),
        ..WorkloadRecord::default()
    };
    // WHEN asked again THEN it is refused until the cool-down ends
    let (outcome, why) = before_reading(false, &record, T0 + 10 * MINUTE, &RULES).unwrap();
    assert_eq!(outcome, Outcome::NotActing);
    assert!(why.starts_with("cool-down"), "{why}");
    assert_eq!(
        before_reading(false, &record, T0 + 15 * MINUTE, &RULES),
        None
    );
    // AND a frozen workload is never acted on
    let (_, why) = before_reading(true, &WorkloadRecord::default(), T0, &RULES).unwrap();
    assert!(why.contains("frozen"));
}

// ---- GitOps owners (Argo CD, Flux): suspended before the rollback, resumed past the bad revision

fn application(name: &str, tracked_by: Option<&str>, revision: &str) -> Value {
    let mut app = json!({"metadata": {"name": name, "namespace": "argocd"},
        "spec": {"source": {"repoURL": "https://git.example/shop.git", "targetRevision": "main"},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true},
                "syncOptions": ["CreateNamespace=true"]}},
        "status": {"sync": {"status": "Synced", "revision": revision},
            "operationState": {"phase": "Succeeded", "syncResult": {"revision": revision}}}});
    if let Some(parent) = tracked_by {
        app["metadata"]["annotations"] = json!({gitops::ARGO_CD_TRACKING_ID:
            format!("{parent}:argoproj.io/Application:argocd/{name}")});
    }
    app
}

fn app_at(name: &str) -> ObjectAt<'_> {
    ObjectAt {
        cluster: "prod",
        namespace: "argocd",
        name,
    }
}

/// web:1 (good, two hours), web:2 deployed from Git commit `bad1` by Argo CD application `shop`.
fn argo_owned(fake: &FakeWorkloads, deployed: u64) {
    deployment_with_history(fake, &[("web:1", T0), ("web:2", deployed)]);
    let mut d = fake.deployment_now(web().at()).unwrap();
    d["metadata"]["annotations"][gitops::ARGO_CD_TRACKING_ID] =
        json!("shop:apps/Deployment:shop/web");
    fake.put_deployment("prod", d);
}

#[tokio::test(start_paused = true)]
async fn an_argo_cd_owned_deployment_is_rolled_back_with_its_auto_sync_suspended_then_resumed_past_the_bad_commit(
) {
    // GIVEN web:2, synced from commit bad1 by application shop (automated, self-heal), which the
    // app-of-apps `apps` syncs in turn (so `apps` would put shop's policy back: argo-cd #5351)
    let fake = FakeWorkloads::default();
    let deployed = T0 + 2 * HOUR;
    argo_owned(&fake, deployed);
    fake.put_object(
        "prod",
        Resource::ArgoApplication,
        application("shop", Some("apps"), "bad1"),
    );
    fake.put_object(
        "prod",
        Resource::ArgoApplication,
        application("apps", None, "root7"),
    );
    // WHEN its alarm fires
    let request = request(web(), alarm(deployed + MINUTE), None);
    let mut record = WorkloadRecord::default();
    let (outcome, reason, _, intents) =
        decide_deployment(&fake, &request, &mut record, deployed + 2 * MINUTE).await;
    // THEN both Applications' automated sync is off, with a note, before the Deployment is
    // patched: the parent first (still syncing, it would put the child's policy back at once)
    assert_eq!(outcome, Outcome::RolledBack, "{reason}");
    assert!(
        reason.contains("Argo CD Application argocd/shop")
            && reason.contains("its parent argocd/apps")
            && reason.contains("until Git moves past bad1"),
        "{reason}"
    );
    assert_eq!(
        fake.writes(),
        [
            "patch Application argocd/apps",
            "patch Application argocd/shop",
            "patch shop/web"
        ]
    );
    for name in ["shop", "apps"] {
        let app = fake
            .object_now(Resource::ArgoApplication, app_at(name))
            .unwrap();
        assert_eq!(
            app["spec"]["syncPolicy"],
            json!({"syncOptions": ["CreateNamespace=true"]}),
            "{name}"
        );
        assert!(app["metadata"]["annotations"][SUSPENDED]
            .as_str()
            .unwrap()
            .contains("breakwater rolled back"));
    }
    assert_eq!(image_now(&fake), "web:1");
    // The Deployment is still the Application's: its tracking annotation was kept, though
    // web:1's ReplicaSet (made before Argo CD adopted it) has none.
    assert_eq!(
        fake.deployment_now(web().at()).unwrap()["metadata"]["annotations"]
            [gitops::ARGO_CD_TRACKING_ID],
        "shop:apps/Deployment:shop/web"
    );
    let s = record.gitops.clone().expect("the suspension is recorded");
    assert_eq!(
        intents.len(),
        1,
        "the suspension is persisted with the intent, before the patch"
    );
    assert_eq!((s.chain.len(), s.owner().revision.as_str()), (2, "bad1"));

    // WHEN Git has not moved THEN nothing resumes
    assert_eq!(gitops::moved(&fake, s.owner()).await.unwrap(), None);
    // WHEN Git moves on (a revert pushed: Argo CD compares with it while auto-sync is off)
    let mut app = fake
        .object_now(Resource::ArgoApplication, app_at("shop"))
        .unwrap();
    app["status"]["sync"] = json!({"status": "OutOfSync", "revision": "fix2"});
    fake.put_object("prod", Resource::ArgoApplication, app);
    assert_eq!(
        gitops::moved(&fake, s.owner()).await.unwrap().as_deref(),
        Some("fix2")
    );
    let said = gitops::resume_all(&fake, &s.chain).await.unwrap();
    // THEN both policies are back exactly as they were, and the notes gone
    assert_eq!(said.len(), 2, "{said:?}");
    for name in ["shop", "apps"] {
        let app = fake
            .object_now(Resource::ArgoApplication, app_at(name))
            .unwrap();
        assert_eq!(
            app["spec"]["syncPolicy"],
            application(name, None, "")["spec"]["syncPolicy"],
            "{name}"
        );
        assert!(
            app["metadata"]["annotations"].get(SUSPENDED).is_none(),
            "{name}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_owner_that_cannot_stay_suspended_is_reported_and_nothing_is_written() {
    let deployed = T0 + 2 * HOUR;
    let now = deployed + 2 * MINUTE;
    // GIVEN an Application generated by an ApplicationSet that does not ignore /spec/syncPolicy
    let fake = FakeWorkloads::default();
    argo_owned(&fake, deployed);
    let mut app = application("shop", None, "bad1");
    app["metadata"]["ownerReferences"] = json!([{"apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet", "name": "shops", "controller": true, "uid": "s1"}]);
    fake.put_object("prod", Resource::ArgoApplication, app.clone());
    fake.put_object(
        "prod",
        Resource::ArgoApplicationSet,
        json!({"metadata": {"name": "shops", "namespace": "argocd"}, "spec": {}}),
    );
    let request = request(web(), alarm(deployed + MINUTE), None);
    let (outcome, reason, _, _) =
        decide_deployment(&fake, &request, &mut WorkloadRecord::default(), now).await;
    // THEN not acting, saying why, and nothing written
    assert_eq!(outcome, Outcome::NotActing, "{reason}");
    assert!(
        reason.contains("ApplicationSet argocd/shops")
            && reason.contains("ignoreApplicationDifferences"),
        "{reason}"
    );
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
    // GIVEN the ApplicationSet ignores the sync policy THEN the rollback goes ahead
    fake.put_object(
        "prod",
        Resource::ArgoApplicationSet,
        json!({"metadata": {"name": "shops", "namespace": "argocd"},
            "spec": {"ignoreApplicationDifferences": [{"jsonPointers": ["/spec/syncPolicy"]}]}}),
    );
    let (outcome, reason, _, _) =
        decide_deployment(&fake, &request, &mut WorkloadRecord::default(), now).await;
    assert_eq!(outcome, Outcome::RolledBack, "{reason}");

    // GIVEN a tracking annotation naming an Application that is not there
    let fake = FakeWorkloads::default();
    argo_owned(&fake, deployed);
    let (outcome, reason, _, _) =
        decide_deployment(&fake, &request, &mut WorkloadRecord::default(), now).await;
    assert_eq!(outcome, Outcome::NotActing, "{reason}");
    assert!(
        reason.contains("was not found") && reason.contains("BREAKWATER_ARGOCD_CLUSTER"),
        "{reason}"
    );
    assert!(fake.writes().is_empty());

    // GIVEN only the generic app.kubernetes.io/instance label, and no such Application: not
    // Argo CD's, rolled back
    let fake = FakeWorkloads::default();
    deployment_with_history(&fake, &[("web:1", T0), ("web:2", deployed)]);
    let mut d = fake.deployment_now(web().at()).unwrap();
    d["metadata"]["labels"] = json!({gitops::ARGO_CD_INSTANCE_LABEL: "web"});
    fake.put_deployment("prod", d);
    let mut record = WorkloadRecord::default();
    let (outcome, reason, _, _) = decide_deployment(&fake, &request, &mut record, now).await;
    assert_eq!(outcome, Outcome::RolledBack, "{reason}");
    assert!(reason.contains("the label is not Argo CD's"), "{reason}");
    assert!(record.gitops.is_none());

    // GIVEN an Application whose automated sync is off already: rolled back, nothing suspended
    let fake = FakeWorkloads::default();
    argo_owned(&fake, deployed);
    let mut manual = application("shop", None, "bad1");
    manual["spec"]["syncPolicy"] = json!({});
    fake.put_object("prod", Resource::ArgoApplication, manual);
    let mut record = WorkloadRecord::default();
    let (outcome, reason, _, _) = decide_deployment(&fake, &request, &mut record, now).await;
    assert_eq!(outcome, Outcome::RolledBack, "{reason}");
    assert!(reason.contains("automated sync is off already"), "{reason}");
    assert_eq!(fake.writes(), ["patch shop/web"]);
    assert!(record.gitops.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_flux_kustomization_is_suspended_and_resumed_when_its_source_moves_past_the_applied_revision(
) {
    // GIVEN web:2 applied by Kustomization flux-system/apps from GitRepository revision main@sha1:bad
    let fake = FakeWorkloads::default();
    let deployed = T0 + 2 * HOUR;
    deployment_with_history(&fake, &[("web:1", T0), ("web:2", deployed)]);
    let mut d = fake.deployment_now(web().at()).unwrap();
    d["metadata"]["labels"] = json!({"kustomize.toolkit.fluxcd.io/name": "apps",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system"});
    fake.put_deployment("prod", d);
    fake.put_object(
        "prod",
        Resource::FluxKustomization,
        json!({"metadata": {"name": "apps", "namespace": "flux-system", "generation": 3},
            "spec": {"interval": "5m", "prune": true,
                "sourceRef": {"kind": "GitRepository", "name": "shop"}},
            "status": {"lastAppliedRevision": "main@sha1:bad"}}),
    );
    let source = |revision: &str| {
        json!({"metadata": {"name": "shop", "namespace": "flux-system"},
        "status": {"artifact": {"revision": revision}}})
    };
    fake.put_object("prod", Resource::FluxGitRepository, source("main@sha1:bad"));
    // WHEN its alarm fires
    let request = request(web(), alarm(deployed + MINUTE), None);
    let mut record = WorkloadRecord::default();
    let (outcome, reason, _, _) =
        decide_deployment(&fake, &request, &mut record, deployed + 2 * MINUTE).await;
    // THEN the Kustomization is suspended, as `flux suspend` does, then the Deployment rolled back
    assert_eq!(outcome, Outcome::RolledBack, "{reason}");
    assert_eq!(
        fake.writes(),
        ["patch Kustomization flux-system/apps", "patch shop/web"]
    );
    let at = ObjectAt {
        cluster: "prod",
        namespace: "flux-system",
        name: "apps",
    };
    assert_eq!(
        fake.object_now(Resource::FluxKustomization, at).unwrap()["spec"]["suspend"],
        true
    );
    let s = record.gitops.unwrap();
    assert_eq!(gitops::moved(&fake, s.owner()).await.unwrap(), None);
    // WHEN the source moves on THEN it is resumed
    fake.put_object("prod", Resource::FluxGitRepository, source("main@sha1:fix"));
    assert_eq!(
        gitops::moved(&fake, s.owner()).await.unwrap().as_deref(),
        Some("main@sha1:fix")
    );
    gitops::resume_all(&fake, &s.chain).await.unwrap();
    let ks = fake.object_now(Resource::FluxKustomization, at).unwrap();
    assert_eq!(ks["spec"]["suspend"], false);
    assert!(ks["metadata"]["annotations"].get(SUSPENDED).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_rollback_the_controller_does_not_take_is_not_promoted_and_a_persons_revision_is_checked_against_the_canary(
) {
    let promoted_at = T0 + 4 * HOUR;
    let rollout = Workload::new("prod", "shop", Kind::Rollout, "web").unwrap();
    // GIVEN no controller takes the new template (it is down, or slow)
    let fake = FakeWorkloads::default();
    promoted_rollout(&fake, &[("web:1", T0), ("web:2", promoted_at)]);
    let alarmed = request(rollout.clone(), alarm(promoted_at + MINUTE), None);
    let (outcome, reason, _) = decide_rollout(
        &fake,
        &alarmed,
        &mut WorkloadRecord::default(),
        promoted_at + 5 * MINUTE,
    )
    .await;
    // THEN the template is rolled back, but nothing is promoted that the controller has not taken
    assert_eq!(outcome, Outcome::RolledBack, "{reason}");
    assert!(reason.contains("NOT promoted"), "{reason}");
    assert_eq!(fake.writes(), ["patch Rollout shop/web"]);
    assert!(fake.rollout_now(rollout.at()).unwrap()["status"]
        .get("promoteFull")
        .is_none());

    // GIVEN web:3 at its canary step over stable web:2
    let fake = FakeWorkloads::default();
    promoted_rollout(
        &fake,
        &[("web:1", T0), ("web:2", T0 + HOUR), ("web:3", promoted_at)],
    );
    let mut canary = fake.rollout_now(rollout.at()).unwrap();
    canary["status"] = json!({"phase": "Paused", "currentPodHash": "r3", "stableRS": "r2"});
    fake.put_rollout("prod", canary);
    let person = |revision| {
        request(
            rollout.clone(),
            Asker::Person("slack:U1".into()),
            Some(revision),
        )
    };
    // WHEN a person asks for the canary's own revision THEN it is refused (a rollback is no promotion)
    let (outcome, reason, _) = decide_rollout(
        &fake,
        &person(3),
        &mut WorkloadRecord::default(),
        promoted_at + MINUTE,
    )
    .await;
    assert_eq!(outcome, Outcome::Refused, "{reason}");
    assert!(reason.contains("the canary in progress"), "{reason}");
    assert!(fake.writes().is_empty());
    // WHEN a person asks for the stable revision THEN the canary is aborted (back to stable)
    let (outcome, reason, _) = decide_rollout(
        &fake,
        &person(2),
        &mut WorkloadRecord::default(),
        promoted_at + MINUTE,
    )
    .await;
    assert_eq!(outcome, Outcome::Aborted, "{reason}");
    // GIVEN a new template the controller has not observed yet THEN nothing is judged
    let fake = FakeWorkloads::default();
    promoted_rollout(&fake, &[("web:1", T0), ("web:2", promoted_at)]);
    let mut fresh = fake.rollout_now(rollout.at()).unwrap();
    fresh["metadata"]["generation"] = json!(5);
    fresh["status"]["observedGeneration"] = json!("4");
    fake.put_rollout("prod", fresh);
    let (outcome, reason, _) = decide_rollout(
        &fake,
        &alarmed,
        &mut WorkloadRecord::default(),
        promoted_at + 5 * MINUTE,
    )
    .await;
    assert_eq!(outcome, Outcome::NotActing, "{reason}");
    assert!(
        reason.contains("has not taken the rollout's new spec"),
        "{reason}"
    );
}
