//! Contract tests of rollback's ports: each scenario is written once, generic over the port,
//! and run against the in-memory fake and against the real adapter (the Kubernetes emulator for
//! the workloads, moto for the secrets and the hand-off); both must see the same.

use std::sync::Arc;

use breakwater::aws::lambda_invoke::{aws_sdk_lambda, LambdaInvoke};
use breakwater::aws::secrets::{aws_sdk_secretsmanager, aws_sdk_ssm, AwsSecrets};
use breakwater::clock::{Clock, SystemClock};
use breakwater::fakes::handoff::FakeHandoff;
use breakwater::fakes::secrets::FakeSecrets;
use breakwater::fakes::workloads::FakeWorkloads;
use breakwater::handoff::Handoff;
use breakwater::kube::workloads::{
    KubeWorkloads, ObjectAt, Patched, Resource, WorkloadKind, Workloads,
};
use breakwater::kube::KubeClients;
use breakwater::secrets::{SecretRef, Secrets};
use breakwater_sandbox::kube::fixtures::{canary_rollout, deployment};
use breakwater_sandbox::kube::KubeEmulator;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::common::{aws, unique};

crate::common::moto_server!();

const REGION: &str = "eu-west-1";

fn at<'a>(name: &'a str) -> ObjectAt<'a> {
    ObjectAt {
        cluster: "prod",
        namespace: "shop",
        name,
    }
}

fn patched(p: &Patched) -> Value {
    match p {
        Patched::Applied(obj) => {
            json!({"applied": obj["spec"]["template"]["spec"]["containers"][0]["image"]})
        }
        Patched::Changed(_) => json!("changed"),
        Patched::Gone => json!("gone"),
    }
}

/// What a rollback sees of a Deployment `web` (image `web:1`) and a Rollout `canary` in the
/// middle of a canary: reads, a stale patch refused, a fresh one applied, an abort.
async fn workloads_scenario(w: &impl Workloads) -> Vec<Value> {
    let mut seen = vec![
        json!(w.exists(at("web"), WorkloadKind::Deployment).await.unwrap()),
        json!(w
            .exists(at("nope"), WorkloadKind::Deployment)
            .await
            .unwrap()),
        json!(w.exists(at("canary"), WorkloadKind::Rollout).await.unwrap()),
        json!(w.deployment(at("nope")).await.unwrap().is_none()),
    ];
    let read = w.deployment(at("web")).await.unwrap().unwrap();
    let uid = read.deployment["metadata"]["uid"].clone();
    let owned = read
        .replica_sets
        .iter()
        .filter(|rs| rs["metadata"]["ownerReferences"][0]["uid"] == uid)
        .count();
    seen.push(json!({"owned replica sets": owned}));
    let stale = json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "0"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "web:0"}]);
    seen.push(patched(
        &w.patch_deployment(at("web"), &stale).await.unwrap(),
    ));
    let fresh = json!([{"op": "test", "path": "/metadata/resourceVersion",
            "value": read.deployment["metadata"]["resourceVersion"]},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "web:0"},
        {"op": "add", "path": "/metadata/annotations", "value": {"kubernetes.io/change-cause": "contract"}}]);
    seen.push(patched(
        &w.patch_deployment(at("web"), &fresh).await.unwrap(),
    ));
    let after = w.deployment(at("web")).await.unwrap().unwrap().deployment;
    seen.push(json!([
        after["spec"]["template"]["spec"]["containers"][0]["image"],
        after["metadata"]["annotations"]["kubernetes.io/change-cause"],
    ]));
    seen.push(patched(
        &w.patch_deployment(at("nope"), &fresh).await.unwrap(),
    ));
    let rollout = w.rollout(at("canary")).await.unwrap().unwrap();
    seen.push(json!(rollout["status"]["abort"] == true));
    seen.push(json!(matches!(
        w.abort_rollout(at("canary")).await.unwrap(),
        Patched::Applied(_)
    )));
    let rollout = w.rollout(at("canary")).await.unwrap().unwrap();
    seen.push(rollout["status"]["abort"].clone());
    seen.push(patched(&w.abort_rollout(at("nope")).await.unwrap()));
    seen.push(json!(w.rollout(at("nope")).await.unwrap().is_none()));
    seen.extend(gitops_scenario(w).await);
    seen
}

/// A GitOps owner's suspension as the rollback writes it: an Argo CD Application's automated
/// policy removed, a Flux Kustomization's `spec.suspend` set, each behind a resourceVersion test.
async fn gitops_scenario(w: &impl Workloads) -> Vec<Value> {
    let app = Resource::ArgoApplication;
    let ks = Resource::FluxKustomization;
    let kind = |p: &Patched| match p {
        Patched::Applied(_) => json!("applied"),
        Patched::Changed(_) => json!("changed"),
        Patched::Gone => json!("gone"),
    };
    let mut seen = vec![json!(w.object(app, at("nope")).await.unwrap().is_none())];
    let read = w.object(app, at("shop")).await.unwrap().unwrap();
    let stale = json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "0"},
        {"op": "remove", "path": "/spec/syncPolicy/automated"}]);
    seen.push(kind(
        &w.patch_object(app, at("shop"), &stale).await.unwrap(),
    ));
    let off = json!([{"op": "test", "path": "/metadata/resourceVersion",
            "value": read["metadata"]["resourceVersion"]},
        {"op": "remove", "path": "/spec/syncPolicy/automated"},
        {"op": "add", "path": "/metadata/annotations", "value": {"breakwater.io/sync-suspended": "contract"}}]);
    seen.push(kind(&w.patch_object(app, at("shop"), &off).await.unwrap()));
    let after = w.object(app, at("shop")).await.unwrap().unwrap();
    seen.push(json!([
        after["spec"]["syncPolicy"],
        after["metadata"]["annotations"]
    ]));
    // Removing what is not there is the API server's 422, not a conflict.
    let missing = json!([{"op": "remove", "path": "/spec/syncPolicy/automated"}]);
    seen.push(json!(w
        .patch_object(app, at("shop"), &missing)
        .await
        .is_err()));
    seen.push(kind(&w.patch_object(app, at("nope"), &off).await.unwrap()));
    let suspend = json!([{"op": "add", "path": "/spec/suspend", "value": true}]);
    seen.push(kind(
        &w.patch_object(ks, at("shop"), &suspend).await.unwrap(),
    ));
    seen.push(w.object(ks, at("shop")).await.unwrap().unwrap()["spec"]["suspend"].clone());
    seen
}

#[tokio::test]
async fn the_workloads_fake_behaves_as_the_kubernetes_api_server_does() {
    // GIVEN the emulator with a Deployment (its controller makes the ReplicaSet) and a Rollout,
    let emu = KubeEmulator::start(SystemClock.now_ms(), 0.0)
        .await
        .unwrap();
    emu.create("namespaces", "", json!({"metadata": {"name": "shop"}}))
        .unwrap();
    emu.create("deployments", "shop", deployment("web", "web", 2, "web:1"))
        .unwrap();
    emu.create("rollouts", "shop", canary_rollout("canary", "canary"))
        .unwrap();
    // An Argo CD Application (in any namespace) and a Flux Kustomization, without their
    // repositories (their controllers leave them alone).
    emu.create("applications", "shop", json!({"apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application", "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"source": {"repoURL": "https://git.example.com/none.git"},
            "syncPolicy": {"automated": {"selfHeal": true}, "syncOptions": ["CreateNamespace=true"]}}}))
        .unwrap();
    emu.create(
        "kustomizations",
        "shop",
        json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization", "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"interval": "5m", "sourceRef": {"kind": "GitRepository", "name": "none"}}}),
    )
    .unwrap();
    // AND the fake holding the same objects
    let fake = FakeWorkloads::default();
    fake.put_deployment("prod", emu.get("deployments", "shop", "web").unwrap());
    for rs in emu.list("replicasets") {
        fake.put_replica_set("prod", rs);
    }
    fake.put_rollout("prod", emu.get("rollouts", "shop", "canary").unwrap());
    for (resource, plural) in [
        (Resource::ArgoApplication, "applications"),
        (Resource::FluxKustomization, "kustomizations"),
    ] {
        fake.put_object("prod", resource, emu.get(plural, "shop", "shop").unwrap());
    }
    let direct = aws(&moto().endpoint(), REGION).await;
    let clients = KubeClients::new(Some(emu.endpoint())).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let real = KubeWorkloads::new(&clients, &direct, &clock);
    // WHEN the same scenario runs against both
    let on_fake = workloads_scenario(&fake).await;
    let on_emulator = workloads_scenario(&real).await;
    // THEN they see the same
    assert_eq!(on_fake, on_emulator);
    assert_eq!(on_fake[4], json!({"owned replica sets": 1}));
    assert_eq!(on_fake[5], json!("changed"));
    assert_eq!(on_fake[6], json!({"applied": "web:0"}));
    assert_eq!(on_fake[16], json!("applied"));
    assert_eq!(
        on_fake[17],
        json!([{"syncOptions": ["CreateNamespace=true"]}, {"breakwater.io/sync-suspended": "contract"}])
    );
    assert_eq!(on_fake[18], json!(true), "a 422 is an error on both");
    assert_eq!(on_fake[21], json!(true));
    assert_eq!(fake.writes().len(), 10, "{:?}", fake.calls());
}

fn outcome(read: breakwater::Result<secrecy::SecretString>) -> Value {
    match read {
        Ok(secret) => json!({"secret": secret.expose_secret()}),
        Err(e) => json!({"error": e.error_type()}),
    }
}

/// A signing secret read by reference: kept in Secrets Manager or as an SSM SecureString; a
/// plain String parameter and a missing one refused.
async fn secrets_scenario(s: &impl Secrets, names: &[String; 3]) -> Vec<Value> {
    let [secret, secure, plain] = names;
    vec![
        outcome(s.read(&SecretRef::SecretsManager(secret.clone())).await),
        outcome(s.read(&SecretRef::Parameter(secure.clone())).await),
        outcome(s.read(&SecretRef::Parameter(plain.clone())).await),
        outcome(
            s.read(&SecretRef::SecretsManager(format!("{secret}-missing")))
                .await,
        ),
        outcome(
            s.read(&SecretRef::Parameter(format!("{secure}-missing")))
                .await,
        ),
    ]
}

#[tokio::test]
async fn the_secrets_fake_reads_and_refuses_as_secrets_manager_and_ssm_do() {
    // GIVEN a secret, a SecureString and a plain String parameter, in moto and in the fake
    let direct = aws(&moto().endpoint(), REGION).await;
    let names = [
        unique("breakwater/slack"),
        format!("/{}", unique("breakwater/pd")),
        format!("/{}", unique("breakwater/plain")),
    ];
    aws_sdk_secretsmanager::Client::new(direct.config())
        .create_secret()
        .name(&names[0])
        .secret_string("s3cret")
        .send()
        .await
        .unwrap();
    let ssm = aws_sdk_ssm::Client::new(direct.config());
    for (name, kind) in [
        (&names[1], aws_sdk_ssm::types::ParameterType::SecureString),
        (&names[2], aws_sdk_ssm::types::ParameterType::String),
    ] {
        ssm.put_parameter()
            .name(name)
            .value("pd-secret")
            .r#type(kind)
            .send()
            .await
            .unwrap();
    }
    let fake = FakeSecrets::default();
    fake.put_secret(&names[0], "s3cret");
    fake.put_parameter(&names[1], "pd-secret", true);
    fake.put_parameter(&names[2], "pd-secret", false);
    // WHEN the same reads run against both
    let on_fake = secrets_scenario(&fake, &names).await;
    let on_moto = secrets_scenario(&AwsSecrets::new(&direct), &names).await;
    // THEN they see the same
    assert_eq!(on_fake, on_moto);
    assert_eq!(on_fake[0], json!({"secret": "s3cret"}));
    assert_eq!(on_fake[2], json!({"error": "Aws"}));
    assert_eq!(fake.reads().len(), 5);
}

/// A hand-off to a function that exists is queued; to one that does not, refused.
async fn handoff_scenario(h: &impl Handoff, function: &str) -> Vec<Value> {
    let event = json!({"command": "webhook", "text": "rollback shop/web"});
    let mut seen = Vec::new();
    for name in [function.to_string(), format!("{function}-missing")] {
        seen.push(match h.queue(&name, &event).await {
            Ok(()) => json!("queued"),
            Err(e) => json!({"error": e.error_type()}),
        });
    }
    seen
}

#[tokio::test]
async fn the_handoff_fake_queues_and_refuses_as_lambda_does() {
    // GIVEN a function in moto and the fake knowing the same one
    let direct = aws(&moto().endpoint(), REGION).await;
    let function = unique("rollback");
    let role = direct
        .iam()
        .create_role()
        .role_name(unique("rollback-role"))
        .assume_role_policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let role_arn = role.role().map(|r| r.arn().to_string()).unwrap();
    // An empty ZIP archive (its end-of-central-directory record alone): moto stores the code.
    let mut empty_zip = b"PK\x05\x06".to_vec();
    empty_zip.extend_from_slice(&[0; 18]);
    aws_sdk_lambda::Client::new(direct.config())
        .create_function()
        .function_name(&function)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(role_arn)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(empty_zip))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let fake = FakeHandoff::default();
    fake.only_functions(&[&function]);
    // WHEN the same hand-offs run against both
    let on_fake = handoff_scenario(&fake, &function).await;
    let on_moto = handoff_scenario(&LambdaInvoke::new(&direct), &function).await;
    // THEN they see the same, and the fake kept the one it queued
    assert_eq!(on_fake, on_moto);
    assert_eq!(on_fake[0], json!("queued"));
    assert_eq!(fake.queued().len(), 1);
}
