//! The S3 state store against moto (and the fault proxy): create-once, compare-and-swap, leases,
//! idempotency, a conditional write whose answer was lost, a read refused with 403.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use breakwater::clock::{Clock, ManualClock, SystemClock};
use breakwater::state::{Acquisition, Idempotent, StateStore};
use breakwater::Error;
use breakwater_sandbox::proxy::{Fault, FaultProxy, Rule};
use serde_json::json;

use crate::common::{fresh_store, read_object};

crate::common::moto_server!();

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_lease_acquisitions_have_exactly_one_winner() {
    // GIVEN a free lease
    let store = fresh_store(moto(), Arc::new(SystemClock)).await;
    // WHEN eight owners race for it, twice over
    for round in 0..2 {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .acquire_lease(
                            "plan",
                            &format!("prod-{round}"),
                            &format!("owner-{i}"),
                            Duration::from_secs(60),
                        )
                        .await
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut held = 0;
        for task in tasks {
            match task.await.unwrap().unwrap() {
                Acquisition::Acquired(lease) => winners.push(lease.owner),
                Acquisition::Held { .. } => held += 1,
            }
        }
        // THEN exactly one holds it, and the record in S3 names that one
        assert_eq!(winners.len(), 1, "winners: {winners:?}");
        assert_eq!(held, 7);
        let stored = read_object(moto(), store.bucket(), &format!("leases/plan/prod-{round}"))
            .await
            .unwrap();
        assert_eq!(stored["data"]["owner"], winners[0].as_str());
        assert_eq!(stored["schema_version"], 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn racing_conditional_puts_to_one_key_have_exactly_one_winner_in_the_sandbox() {
    // S3 evaluates a conditional write atomically: of several `If-None-Match: *` PUTs to one
    // key exactly one succeeds, the others get 412 PreconditionFailed (or 409
    // ConditionalRequestConflict while the winner is in flight); the same holds for `If-Match`
    // on one ETag. (S3 user guide, "How to prevent object overwrites with conditional writes":
    // "If multiple conditional writes occur for the same object name, the first write
    // operation to finish succeeds".) moto 5.2 checks and then writes without a lock, so two
    // racers could both win there: the sandbox must be as strict as S3, or the lease test
    // above passes or fails by luck. Plain SDK calls, no store logic in between.
    // https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
    let aws = crate::common::aws(&moto().endpoint(), "us-east-1").await;
    let s3 = aws.s3();
    let bucket = crate::common::unique("race");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    for round in 0..20 {
        let key = format!("k-{round}");
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (s3, bucket, key) = (s3.clone(), bucket.clone(), key.clone());
                tokio::spawn(async move {
                    s3.put_object()
                        .bucket(bucket)
                        .key(key)
                        .if_none_match("*")
                        .body(format!("writer {i}").into_bytes().into())
                        .send()
                        .await
                        .map(|_| i)
                        .map_err(|e| e.raw_response().map(|r| r.status().as_u16()))
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(i) => winners.push(i),
                Err(Some(412 | 409)) => {}
                Err(other) => panic!("a losing create must be refused 412 or 409, got {other:?}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: creates that won: {winners:?}"
        );
        let stored = s3
            .get_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
        let etag = stored.e_tag().unwrap().to_string();
        let body = stored.body.collect().await.unwrap().into_bytes();
        assert_eq!(body.as_ref(), format!("writer {}", winners[0]).as_bytes());
        // AND of 16 replaces of that version (`If-Match`), exactly one succeeds
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (s3, bucket, key, etag) =
                    (s3.clone(), bucket.clone(), key.clone(), etag.clone());
                tokio::spawn(async move {
                    s3.put_object()
                        .bucket(bucket)
                        .key(key)
                        .if_match(etag)
                        .body(format!("replacer {i}").into_bytes().into())
                        .send()
                        .await
                        .map(|_| i)
                        .map_err(|e| e.raw_response().map(|r| r.status().as_u16()))
                })
            })
            .collect();
        let mut replaced = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(i) => replaced.push(i),
                Err(Some(412 | 409)) => {}
                Err(other) => panic!("a losing replace must be refused 412 or 409, got {other:?}"),
            }
        }
        assert_eq!(
            replaced.len(),
            1,
            "round {round}: replaces that won: {replaced:?}"
        );
    }
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_its_old_owner_can_no_longer_renew() {
    // GIVEN owner a holds a 10-second lease
    let clock = ManualClock::at(1_800_000_000_000);
    let store = fresh_store(moto(), Arc::new(clock.clone())).await;
    let Acquisition::Acquired(mut lease_a) = store
        .acquire_lease("plan", "p", "a", Duration::from_secs(10))
        .await
        .unwrap()
    else {
        panic!("a should acquire a free lease");
    };
    // WHEN b asks while it is live, then after it expired
    let early = store
        .acquire_lease("plan", "p", "b", Duration::from_secs(10))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(11));
    let late = store
        .acquire_lease("plan", "p", "b", Duration::from_secs(10))
        .await
        .unwrap();
    // THEN b is refused first, then takes over; a's renewal and release change nothing
    assert_eq!(
        early,
        Acquisition::Held {
            owner: "a".into(),
            expires_at_ms: 1_800_000_010_000
        }
    );
    let Acquisition::Acquired(lease_b) = late else {
        panic!("b should take over: {late:?}")
    };
    assert_eq!(lease_b.taken_over_from.as_deref(), Some("a"));
    assert_eq!(lease_b.generation, 2);
    let renewal = store
        .renew_lease(&mut lease_a, Duration::from_secs(10))
        .await;
    assert!(matches!(renewal, Err(Error::Conflict(_))), "{renewal:?}");
    store.release_lease(lease_a).await.unwrap();
    let stored = read_object(moto(), store.bucket(), "leases/plan/p")
        .await
        .unwrap();
    assert_eq!(stored["data"]["owner"], "b");
    assert_eq!(stored["data"]["expires_at_ms"], 1_800_000_021_000u64);
    // AND b's own release frees it for the next owner at once
    store.release_lease(lease_b).await.unwrap();
    let next = store
        .acquire_lease("plan", "p", "c", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        matches!(next, Acquisition::Acquired(ref l) if l.taken_over_from.as_deref() == Some("b")),
        "{next:?}"
    );
}

#[tokio::test]
async fn renewal_extends_a_held_lease() {
    let clock = ManualClock::at(1_800_000_000_000);
    let store = fresh_store(moto(), Arc::new(clock.clone())).await;
    let Acquisition::Acquired(mut lease) = store
        .acquire_lease("plan", "r", "a", Duration::from_secs(10))
        .await
        .unwrap()
    else {
        panic!()
    };
    clock.advance(Duration::from_secs(8));
    store
        .renew_lease(&mut lease, Duration::from_secs(10))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(8));
    let other = store
        .acquire_lease("plan", "r", "b", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        other,
        Acquisition::Held {
            owner: "a".into(),
            expires_at_ms: 1_800_000_018_000
        }
    );
}

#[tokio::test]
async fn create_once_refuses_a_second_create_and_a_stale_etag_is_refused() {
    // GIVEN a record written once and then updated
    let store = fresh_store(moto(), Arc::new(SystemClock)).await;
    let first = store
        .create("ledger/x.json", &json!({"size": 3}))
        .await
        .unwrap()
        .expect("created");
    assert_eq!(
        store
            .create("ledger/x.json", &json!({"size": 99}))
            .await
            .unwrap(),
        None
    );
    let second = store
        .replace("ledger/x.json", &json!({"size": 4}), &first)
        .await
        .unwrap();
    assert_ne!(first, second);
    // WHEN a writer still holding the first ETag tries to write
    let stale = store
        .replace("ledger/x.json", &json!({"size": 5}), &first)
        .await;
    // THEN it is refused and the second write stands
    assert!(matches!(stale, Err(Error::Conflict(_))), "{stale:?}");
    let current = store
        .get::<serde_json::Value>("ledger/x.json")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.value, json!({"size": 4}));
    assert_eq!(current.etag, second);
    assert_eq!(
        store
            .get::<serde_json::Value>("ledger/none.json")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn the_same_idempotency_key_twice_returns_the_stored_result_without_a_second_effect() {
    let store = fresh_store(moto(), Arc::new(SystemClock)).await;
    let effects = Arc::new(AtomicU32::new(0));
    let run = |owner: &'static str| {
        let effects = effects.clone();
        let store = store.clone();
        async move {
            store
                .once(
                    "probe",
                    "evt-1",
                    owner,
                    Duration::from_secs(60),
                    || async move {
                        let n = effects.fetch_add(1, Ordering::SeqCst) + 1;
                        Ok(json!({"scaled_to": 6, "effect": n}))
                    },
                )
                .await
        }
    };
    let first = run("req-1").await.unwrap();
    let second = run("req-2").await.unwrap();
    assert_eq!(
        first,
        Idempotent::Fresh(json!({"scaled_to": 6, "effect": 1}))
    );
    assert_eq!(
        second,
        Idempotent::Repeat(json!({"scaled_to": 6, "effect": 1}))
    );
    assert_eq!(effects.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_run_the_effect_once() {
    let store = fresh_store(moto(), Arc::new(SystemClock)).await;
    let effects = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            let effects = effects.clone();
            tokio::spawn(async move {
                store
                    .once(
                        "probe",
                        "evt-dup",
                        &format!("req-{i}"),
                        Duration::from_secs(60),
                        || async move {
                            effects.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            Ok(json!("done"))
                        },
                    )
                    .await
            })
        })
        .collect();
    let mut fresh = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(Idempotent::Fresh(_)) => fresh += 1,
            Ok(Idempotent::Repeat(v)) => assert_eq!(v, json!("done")),
            Err(Error::Conflict(reason)) => {
                assert!(reason.contains("already being handled"), "{reason}")
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(fresh, 1);
    assert_eq!(effects.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failed_effect_is_retried_and_an_abandoned_one_is_taken_over() {
    let clock = ManualClock::at(1_800_000_000_000);
    let store = fresh_store(moto(), Arc::new(clock.clone())).await;
    // A failure is stored as failed, and the next delivery runs the effect again.
    let failed = store
        .once(
            "probe",
            "evt-f",
            "req-1",
            Duration::from_secs(60),
            || async { Err::<u32, _>(Error::Retryable("throttled".into())) },
        )
        .await;
    assert!(matches!(failed, Err(Error::Retryable(_))));
    let retried = store
        .once(
            "probe",
            "evt-f",
            "req-2",
            Duration::from_secs(60),
            || async { Ok(7u32) },
        )
        .await
        .unwrap();
    assert_eq!(retried, Idempotent::Fresh(7));
    // An owner that vanished mid-effect blocks duplicates only until its record expires.
    store.create("idempotency/probe/evt-a", &json!({"status": "in_progress", "owner": "crashed", "expires_at_ms": 1_800_000_060_000u64})).await.unwrap();
    let blocked = store
        .once(
            "probe",
            "evt-a",
            "req-3",
            Duration::from_secs(60),
            || async { Ok(1u32) },
        )
        .await;
    assert!(matches!(blocked, Err(Error::Conflict(_))), "{blocked:?}");
    clock.advance(Duration::from_secs(61));
    let taken = store
        .once(
            "probe",
            "evt-a",
            "req-4",
            Duration::from_secs(60),
            || async { Ok(2u32) },
        )
        .await
        .unwrap();
    assert_eq!(taken, Idempotent::Fresh(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_of_one_record_lose_nothing_and_no_change_writes_nothing() {
    let store = Arc::new(fresh_store(moto(), Arc::new(SystemClock)).await);
    let mut tasks = Vec::new();
    for i in 0..4u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .update::<Vec<u32>, _>("index.json", |v| {
                    v.push(i);
                    true
                })
                .await
        }));
    }
    let mut lost = 0;
    for t in tasks {
        // Four writers inside the retry budget: every one lands (a loser reads again).
        if t.await.unwrap().is_err() {
            lost += 1;
        }
    }
    assert_eq!(lost, 0);
    let mut stored = store.get::<Vec<u32>>("index.json").await.unwrap().unwrap();
    stored.value.sort_unstable();
    assert_eq!(stored.value, vec![0, 1, 2, 3]);
    let unchanged = store
        .update::<Vec<u32>, _>("index.json", |_| false)
        .await
        .unwrap();
    assert_eq!(unchanged.len(), 4);
    let again = store.get::<Vec<u32>>("index.json").await.unwrap().unwrap();
    assert_eq!(again.etag, stored.etag, "no change, no write");
}

/// A store whose calls go through a fault proxy in front of this module's moto (the bucket is
/// made directly).
async fn store_through_proxy(clock: Arc<dyn Clock>) -> (StateStore, FaultProxy) {
    let proxy = FaultProxy::start(&moto().endpoint(), 17).await.unwrap();
    let direct = fresh_store(moto(), clock.clone()).await;
    let proxied = crate::common::aws(&proxy.endpoint(), "us-east-1").await;
    (
        StateStore::new(proxied.s3(), direct.bucket().to_string(), clock),
        proxy,
    )
}

/// The calls of `operation` the proxy saw: (status, fault).
fn seen(proxy: &FaultProxy, operation: &str) -> Vec<(Option<u16>, Option<String>)> {
    proxy
        .calls()
        .into_iter()
        .filter(|c| c.operation == operation)
        .map(|c| (c.status, c.fault))
        .collect()
}

#[tokio::test]
async fn a_claim_whose_answer_was_lost_is_recognised_as_its_own_and_the_event_is_handled_once() {
    // GIVEN the first claim PUT reaches S3 and takes effect, but the connection resets before
    // the answer (the SDK retries it, and S3 answers the retry 412: the key exists)
    let (store, proxy) = store_through_proxy(Arc::new(SystemClock)).await;
    proxy.add_rule(
        Rule::always(Fault::ResetAfterCommit)
            .operation("PutObject")
            .times(1),
    );
    let effects = Arc::new(AtomicU32::new(0));
    // WHEN the event is handled
    let counted = effects.clone();
    let outcome = store
        .once(
            "probe",
            "evt-lost-answer",
            "req-1",
            Duration::from_secs(60),
            || async move {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(json!("scaled"))
            },
        )
        .await;
    // THEN it is handled (not dropped as "already being handled by req-1"), once
    assert_eq!(outcome.unwrap(), Idempotent::Fresh(json!("scaled")));
    assert_eq!(effects.load(Ordering::SeqCst), 1);
    let puts = seen(&proxy, "PutObject");
    assert_eq!(
        puts[..2],
        [
            (Some(200), Some("ResetAfterCommit".to_string())),
            (Some(412), None)
        ],
        "{puts:?}"
    );
    let stored = read_object(moto(), store.bucket(), "idempotency/probe/evt-lost-answer")
        .await
        .unwrap();
    assert_eq!(stored["data"]["status"], "completed", "{stored}");
    // AND a duplicate delivery gets the stored result without a second effect
    let again = store
        .once(
            "probe",
            "evt-lost-answer",
            "req-2",
            Duration::from_secs(60),
            || async { Ok(json!("twice")) },
        )
        .await
        .unwrap();
    assert_eq!(again, Idempotent::Repeat(json!("scaled")));
}

#[tokio::test]
async fn a_create_or_swap_whose_answer_was_lost_reports_success_and_a_foreign_record_is_still_refused(
) {
    // GIVEN every conditional PUT takes effect but loses its first answer
    let (store, proxy) = store_through_proxy(Arc::new(SystemClock)).await;
    proxy.add_rule(
        Rule::always(Fault::ResetAfterCommit)
            .operation("PutObject")
            .times(2),
    );
    // WHEN a record is created, then swapped
    let created = store
        .create("ledger/lost.json", &json!({"size": 3}))
        .await
        .unwrap();
    let etag = created.expect("the create that took effect is this call's");
    let swapped = store
        .replace("ledger/lost.json", &json!({"size": 4}), &etag)
        .await;
    // THEN both report what S3 did, with the ETag of what is stored
    let current = store
        .get::<serde_json::Value>("ledger/lost.json")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.value, json!({"size": 4}));
    assert_eq!(swapped.unwrap(), current.etag);
    assert_eq!(
        seen(&proxy, "PutObject")
            .iter()
            .filter(|(s, _)| *s == Some(412))
            .count(),
        2
    );
    // AND a record someone else wrote is still refused
    assert_eq!(
        store
            .create("ledger/lost.json", &json!({"size": 9}))
            .await
            .unwrap(),
        None
    );
    let stale = store
        .replace("ledger/lost.json", &json!({"size": 9}), &etag)
        .await;
    assert!(matches!(stale, Err(Error::Conflict(_))), "{stale:?}");
}

#[tokio::test]
async fn a_read_refused_with_403_is_access_denied_naming_s3_list_bucket_not_an_absent_record() {
    // GIVEN a role without s3:ListBucket: S3 answers a read of a missing key 403 AccessDenied
    // (GetObject, "Permissions": https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html)
    let (store, proxy) = store_through_proxy(Arc::new(SystemClock)).await;
    proxy.add_rule(Rule::always(Fault::AccessDenied).operation("GetObject"));
    // WHEN a record is read, or read-modified-written
    let read = store
        .get::<serde_json::Value>("spot/instances/i-0abc.json")
        .await;
    let updated = store
        .update::<Vec<u32>, _>("spot/cordoned.json", |v| {
            v.push(1);
            true
        })
        .await;
    // THEN each fails with an error that says what to grant, and nothing is written
    let expected = format!(
        "access denied reading s3://{}/spot/instances/i-0abc.json (does the role have s3:ListBucket on the prefix?)",
        store.bucket()
    );
    match read {
        Err(Error::Forbidden(message)) => assert_eq!(message, expected),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(updated, Err(Error::Forbidden(ref m)) if m.contains("s3:ListBucket")),
        "{updated:?}"
    );
    assert!(seen(&proxy, "PutObject").is_empty());
}

#[tokio::test]
async fn a_refused_completion_is_written_again_while_the_claim_is_still_its_own() {
    // GIVEN the claim is written, but the PUT that completes it is refused once (a 412 as S3
    // gives a conditional write that did not hold, a 409 while another is in flight)
    let (store, proxy) = store_through_proxy(Arc::new(SystemClock)).await;
    proxy.add_rule(
        Rule::always(Fault::PreconditionFailed)
            .operation("PutObject")
            .after(1)
            .times(1),
    );
    proxy.add_rule(
        Rule::always(Fault::Conflict)
            .operation("PutObject")
            .after(1)
            .times(1),
    );
    // WHEN the event is handled
    let first = store
        .once(
            "probe",
            "evt-refused-completion",
            "req-1",
            Duration::from_secs(60),
            || async { Ok(json!("scaled")) },
        )
        .await
        .unwrap();
    // THEN the record is completed all the same, and a duplicate gets the stored result instead
    // of "already being handled" for the claim's whole TTL
    assert_eq!(first, Idempotent::Fresh(json!("scaled")));
    let faults: Vec<_> = seen(&proxy, "PutObject")
        .into_iter()
        .filter_map(|(_, f)| f)
        .collect();
    assert_eq!(faults, ["PreconditionFailed", "Conflict"]);
    let again = store
        .once(
            "probe",
            "evt-refused-completion",
            "req-2",
            Duration::from_secs(60),
            || async { Ok(json!("twice")) },
        )
        .await
        .unwrap();
    assert_eq!(again, Idempotent::Repeat(json!("scaled")));
}

#[tokio::test]
async fn two_writers_of_the_same_record_in_the_same_millisecond_do_not_both_win() {
    // GIVEN two writers with the same clock reading, creating the same record with the same data
    // (two invocations racing to record the same on-demand raise)
    let clock = ManualClock::at(1_796_000_000_000);
    let store = fresh_store(moto(), Arc::new(clock.clone())).await;
    let record = json!({"raised": "spot-a", "to": 3});

    // WHEN both create it
    let first = store.create("spot/pool/raise.json", &record).await.unwrap();
    let second = store.create("spot/pool/raise.json", &record).await.unwrap();

    // THEN exactly one created it: the second's 412 is not mistaken for its own lost first
    // attempt although the data and the millisecond are the same (each write carries its own
    // token, which only the SDK's retry of that same write repeats)
    assert!(first.is_some());
    assert_eq!(second, None);
}

#[tokio::test]
async fn a_create_answered_409_is_sent_again_and_not_taken_for_an_existing_record() {
    // GIVEN a store whose next write races another operation on the key: S3 answers 409
    // ConditionalRequestConflict and writes nothing ("retry on 409", S3 conditional writes)
    let proxy = FaultProxy::start(&moto().endpoint(), 3).await.unwrap();
    let direct = crate::common::aws(&moto().endpoint(), "us-east-1").await;
    let bucket = crate::common::unique("conflict");
    direct
        .s3()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let proxied = crate::common::aws(&proxy.endpoint(), "us-east-1").await;
    let store = StateStore::new(proxied.s3(), bucket.clone(), Arc::new(SystemClock));
    proxy.add_rule(
        Rule::always(Fault::Conflict)
            .operation("PutObject")
            .times(1),
    );

    // WHEN a record is created
    let created = store
        .create("ledger/budget/entry.json", &json!({"before": 3}))
        .await
        .unwrap();

    // THEN this call created it (before, the 409 read as "already there", and the record
    // then "vanished" for the budget ladder), and it is there
    assert!(created.is_some());
    let stored = read_object(moto(), &bucket, "ledger/budget/entry.json")
        .await
        .unwrap();
    assert_eq!(stored["data"]["before"], 3);
}

#[tokio::test]
async fn a_create_refused_412_whose_key_then_reads_absent_is_created_again() {
    // GIVEN a create refused with 412 `PreconditionFailed` although the key then reads absent:
    // the object that stood in the way was deleted between the two (S3 evaluates
    // `If-None-Match: *` against the object as it stands when the write arrives; conditional
    // requests, Amazon S3 User Guide). In the game day this lost a failover: the execution record
    // was taken as "created by somebody else" and never existed.
    let (store, proxy) = store_through_proxy(Arc::new(SystemClock)).await;
    proxy.add_rule(
        Rule::always(Fault::PreconditionFailed)
            .operation("PutObject")
            .times(1),
    );

    // WHEN the record is created
    let created = store
        .create("failover/executions/x.json", &json!({"step": "decided"}))
        .await
        .unwrap();

    // THEN this call created it, and it reads back
    assert!(created.is_some());
    assert_eq!(
        seen(&proxy, "PutObject"),
        vec![
            (Some(412), Some("PreconditionFailed".into())),
            (Some(200), None)
        ]
    );
    let stored = store
        .get::<serde_json::Value>("failover/executions/x.json")
        .await
        .unwrap()
        .expect("the record exists");
    assert_eq!(stored.value["step"], "decided");
}

#[tokio::test]
async fn a_replace_refused_412_while_its_version_still_stands_is_sent_again() {
    // GIVEN a record, and a replace of its current version refused once with 412 although
    // nobody wrote in between (the version it names still stands: S3 changes the ETag on every
    // overwrite). In the game day this lost a budget ladder step after the database was stopped.
    let (store, proxy) = store_through_proxy(Arc::new(SystemClock)).await;
    let etag = store
        .create("ledger/budget/x.json", &json!({"after": "stopping"}))
        .await
        .unwrap()
        .expect("created");
    proxy.add_rule(
        Rule::always(Fault::PreconditionFailed)
            .operation("PutObject")
            .times(1),
    );

    // WHEN the entry is completed
    store
        .replace("ledger/budget/x.json", &json!({"after": "stopped"}), &etag)
        .await
        .unwrap();

    // THEN it is written, once
    let stored = store
        .get::<serde_json::Value>("ledger/budget/x.json")
        .await
        .unwrap()
        .expect("the record exists");
    assert_eq!(stored.value["after"], "stopped");
    assert_eq!(
        seen(&proxy, "PutObject"),
        vec![
            (Some(200), None),
            (Some(412), Some("PreconditionFailed".into())),
            (Some(200), None)
        ]
    );

    // AND a replace of a version that no longer stands is still a lost race
    let stale = store
        .replace("ledger/budget/x.json", &json!({"after": "x"}), &etag)
        .await;
    assert!(matches!(stale, Err(Error::Conflict(_))), "{stale:?}");
}
