//! The Route 53 ARC cluster emulator (`sandbox/moto_arc.py` behind `sandbox::arc::ArcCluster`),
//! driven by the real SDK client (`aws-sdk-route53recoverycluster`) through the cluster's five
//! regional endpoints: routing-control state round trips, safety rules (assertion and gating,
//! their override), the errors ARC answers, endpoints that are down or in a lost region, and IAM.

use aws_sdk_route53recoverycluster::config::Credentials;
use aws_sdk_route53recoverycluster::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_route53recoverycluster::operation::get_routing_control_state::GetRoutingControlStateError;
use aws_sdk_route53recoverycluster::operation::update_routing_control_state::UpdateRoutingControlStateError;
use aws_sdk_route53recoverycluster::operation::update_routing_control_states::UpdateRoutingControlStatesError;
use aws_sdk_route53recoverycluster::types::{RoutingControlState, UpdateRoutingControlStateEntry};
use breakwater_sandbox::arc::{ArcCluster, ArcFault, ControlState, RuleConfig, RuleType, REGIONS};
use breakwater_sandbox::proxy::{FaultProxy, Rule};

use crate::common::{aws, moto_server, unique};

moto_server!();

/// A cluster whose endpoints forward straight to this module's moto.
async fn cluster() -> ArcCluster {
    ArcCluster::start(&moto().endpoint(), &moto().endpoint())
        .await
        .expect("the ARC cluster starts")
}

fn entry(arn: &str, state: &str) -> UpdateRoutingControlStateEntry {
    UpdateRoutingControlStateEntry::builder()
        .routing_control_arn(arn)
        .routing_control_state(RoutingControlState::from(state))
        .build()
        .unwrap()
}

fn is_unanswered<E, R>(err: &SdkError<E, R>) -> bool {
    matches!(
        err,
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    )
}

#[tokio::test]
async fn states_round_trip_through_every_endpoint_and_list_pages() {
    // GIVEN a control panel with two routing controls, east On and west Off
    let arc = cluster().await;
    let panel = arc.create_control_panel(&unique("panel")).await.unwrap();
    let east = arc
        .create_routing_control(&panel, "east", ControlState::On)
        .await
        .unwrap();
    let west = arc
        .create_routing_control(&panel, "west", ControlState::Off)
        .await
        .unwrap();
    assert_eq!(arc.endpoints().len(), 5);
    assert!(arc.endpoints().iter().all(|(url, _)| url.ends_with("/v1")));

    // WHEN every endpoint lists the panel one control per page and reads east
    for region in REGIONS {
        let client = arc.client(region).await.unwrap();
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let page = client
                .list_routing_controls()
                .control_panel_arn(&panel)
                .max_results(1)
                .set_next_token(token)
                .send()
                .await
                .expect("list answers");
            for control in page.routing_controls() {
                assert_eq!(control.control_panel_arn(), Some(panel.as_str()));
                assert_eq!(control.owner(), Some("123456789012"));
                seen.push((
                    control
                        .routing_control_name()
                        .unwrap_or_default()
                        .to_string(),
                    control.routing_control_state().cloned(),
                ));
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        // THEN each sees both controls, in two pages, with their states
        assert_eq!(
            seen,
            vec![
                ("east".to_string(), Some(RoutingControlState::On)),
                ("west".to_string(), Some(RoutingControlState::Off)),
            ],
            "{region}"
        );
        let got = client
            .get_routing_control_state()
            .routing_control_arn(&east)
            .send()
            .await
            .unwrap();
        assert_eq!(got.routing_control_state(), &RoutingControlState::On);
        assert_eq!(got.routing_control_name(), Some("east"));
        // AND each endpoint saw its own three requests
        assert_eq!(arc.requests(region), 3, "{region}");
    }

    // WHEN one endpoint moves traffic west in one batch
    arc.client("ap-southeast-2")
        .await
        .unwrap()
        .update_routing_control_states()
        .update_routing_control_state_entries(entry(&east, "Off"))
        .update_routing_control_state_entries(entry(&west, "On"))
        .send()
        .await
        .expect("the batch is accepted");

    // THEN the judge and another endpoint read the new states back
    assert_eq!(arc.state(&east).await.unwrap(), ControlState::Off);
    assert_eq!(arc.state(&west).await.unwrap(), ControlState::On);
    let west_state = arc
        .client("eu-west-1")
        .await
        .unwrap()
        .get_routing_control_state()
        .routing_control_arn(&west)
        .send()
        .await
        .unwrap();
    assert_eq!(west_state.routing_control_state(), &RoutingControlState::On);
}

#[tokio::test]
async fn an_assertion_rule_refuses_a_batch_that_would_break_it_and_nothing_changes() {
    // GIVEN east On, west Off, a third control Off, and "at least one of east and west On"
    let arc = cluster().await;
    let panel = arc.create_control_panel(&unique("panel")).await.unwrap();
    let east = arc
        .create_routing_control(&panel, "east", ControlState::On)
        .await
        .unwrap();
    let west = arc
        .create_routing_control(&panel, "west", ControlState::Off)
        .await
        .unwrap();
    let other = arc
        .create_routing_control(&panel, "other", ControlState::Off)
        .await
        .unwrap();
    let rule = arc
        .create_assertion_rule(
            &panel,
            "one-cell-on",
            &[&east, &west],
            RuleConfig::new(RuleType::AtLeast(1)),
        )
        .await
        .unwrap();
    let client = arc.client("us-west-2").await.unwrap();

    // WHEN a batch turns east Off (both cells Off) and the third control On
    let err = client
        .update_routing_control_states()
        .update_routing_control_state_entries(entry(&other, "On"))
        .update_routing_control_state_entries(entry(&east, "Off"))
        .send()
        .await
        .expect_err("the rule refuses it");

    // THEN ARC's ConflictException names the rule, and no control changed (all or nothing)
    match err.into_service_error() {
        UpdateRoutingControlStatesError::ConflictException(e) => {
            assert!(e.message().contains(&rule), "{e:?}");
            assert_eq!(e.resource_id(), rule);
        }
        other => panic!("expected ConflictException, got {other:?}"),
    }
    assert_eq!(arc.state(&east).await.unwrap(), ControlState::On);
    assert_eq!(arc.state(&other).await.unwrap(), ControlState::Off);

    // AND the failover itself (west On, east Off, in one batch) satisfies the rule
    client
        .update_routing_control_states()
        .update_routing_control_state_entries(entry(&west, "On"))
        .update_routing_control_state_entries(entry(&east, "Off"))
        .send()
        .await
        .expect("the rule holds after the batch");
    assert_eq!(arc.state(&east).await.unwrap(), ControlState::Off);
    assert_eq!(arc.state(&west).await.unwrap(), ControlState::On);
}

#[tokio::test]
async fn a_gating_rule_refuses_until_the_gate_is_on_or_the_rule_is_overridden() {
    // GIVEN a gate Off that gates east and west
    let arc = cluster().await;
    let panel = arc.create_control_panel(&unique("panel")).await.unwrap();
    let gate = arc
        .create_routing_control(&panel, "gate", ControlState::Off)
        .await
        .unwrap();
    let east = arc
        .create_routing_control(&panel, "east", ControlState::On)
        .await
        .unwrap();
    let west = arc
        .create_routing_control(&panel, "west", ControlState::Off)
        .await
        .unwrap();
    let rule = arc
        .create_gating_rule(
            &panel,
            "main-switch",
            &[&gate],
            &[&east, &west],
            RuleConfig::new(RuleType::Or),
        )
        .await
        .unwrap();
    let client = arc.client("eu-west-1").await.unwrap();

    // WHEN a target is changed while the gate is Off
    let err = client
        .update_routing_control_state()
        .routing_control_arn(&west)
        .routing_control_state(RoutingControlState::On)
        .send()
        .await
        .expect_err("the gate is Off");
    // THEN it is refused and west stays Off
    assert!(
        matches!(
            err.into_service_error(),
            UpdateRoutingControlStateError::ConflictException(_)
        ),
        "expected ConflictException"
    );
    assert_eq!(arc.state(&west).await.unwrap(), ControlState::Off);

    // WHEN the same change overrides the gating rule
    client
        .update_routing_control_state()
        .routing_control_arn(&west)
        .routing_control_state(RoutingControlState::On)
        .safety_rules_to_override(&rule)
        .send()
        .await
        .expect("an overridden rule does not apply");
    // THEN it goes through
    assert_eq!(arc.state(&west).await.unwrap(), ControlState::On);

    // AND with the gate On a target changes without an override; the gate itself is no target
    arc.set_state(&gate, ControlState::On).await.unwrap();
    client
        .update_routing_control_state()
        .routing_control_arn(&east)
        .routing_control_state(RoutingControlState::Off)
        .send()
        .await
        .expect("the gate is On");
    assert_eq!(arc.state(&east).await.unwrap(), ControlState::Off);
}

#[tokio::test]
async fn unknown_arns_bad_states_and_other_clusters_controls_are_refused() {
    // GIVEN a control on this cluster and one on another cluster sharing the same moto
    let arc = cluster().await;
    let panel = arc.create_control_panel(&unique("panel")).await.unwrap();
    let east = arc
        .create_routing_control(&panel, "east", ControlState::On)
        .await
        .unwrap();
    let elsewhere = cluster().await;
    let foreign_panel = elsewhere
        .create_control_panel(&unique("panel"))
        .await
        .unwrap();
    let foreign = elsewhere
        .create_routing_control(&foreign_panel, "east", ControlState::On)
        .await
        .unwrap();
    let client = arc.client("us-east-1").await.unwrap();

    // WHEN an ARN nobody created, and another cluster's control, are read
    for arn in [format!("{panel}/routingcontrol/0000000000000000"), foreign] {
        let err = client
            .get_routing_control_state()
            .routing_control_arn(&arn)
            .send()
            .await
            .expect_err("no such control on this cluster");
        // THEN each is ResourceNotFoundException naming the ARN
        match err.into_service_error() {
            GetRoutingControlStateError::ResourceNotFoundException(e) => {
                assert_eq!(e.resource_id(), arn)
            }
            other => panic!("expected ResourceNotFoundException, got {other:?}"),
        }
    }

    // WHEN a state is spelled otherwise than On / Off
    let err = client
        .update_routing_control_state()
        .routing_control_arn(&east)
        .routing_control_state(RoutingControlState::from("ON"))
        .send()
        .await
        .expect_err("ON is not a state");
    // THEN it is a ValidationException and the control keeps its state
    assert!(
        matches!(
            err.into_service_error(),
            UpdateRoutingControlStateError::ValidationException(_)
        ),
        "expected ValidationException"
    );
    assert_eq!(arc.state(&east).await.unwrap(), ControlState::On);

    // WHEN a batch names an unknown control beside a known one
    let err = client
        .update_routing_control_states()
        .update_routing_control_state_entries(entry(&east, "Off"))
        .update_routing_control_state_entries(entry(&format!("{panel}/routingcontrol/ffff"), "On"))
        .send()
        .await
        .expect_err("one control is unknown");
    // THEN the whole batch is refused
    assert!(matches!(
        err.into_service_error(),
        UpdateRoutingControlStatesError::ResourceNotFoundException(_)
    ));
    assert_eq!(arc.state(&east).await.unwrap(), ControlState::On);
}

#[tokio::test]
async fn an_endpoint_set_down_goes_unanswered_while_the_other_four_answer() {
    // GIVEN a control, and the eu-west-1 endpoint down
    let arc = cluster().await;
    let panel = arc.create_control_panel(&unique("panel")).await.unwrap();
    let east = arc
        .create_routing_control(&panel, "east", ControlState::On)
        .await
        .unwrap();
    arc.set_down("eu-west-1", true);

    // WHEN every endpoint is asked for the state
    for region in REGIONS {
        let answer = arc
            .client(region)
            .await
            .unwrap()
            .get_routing_control_state()
            .routing_control_arn(&east)
            .send()
            .await;
        // THEN the one that is down never answers (a dispatch failure, no service error)
        if region == "eu-west-1" {
            let err = answer.expect_err("the endpoint is down");
            assert!(is_unanswered(&err), "{err:?}");
        } else {
            assert_eq!(
                answer.expect("the endpoint is up").routing_control_state(),
                &RoutingControlState::On
            );
        }
        assert_eq!(arc.requests(region), 1, "{region}");
    }

    // AND once up again, it answers
    arc.set_down("eu-west-1", false);
    arc.client("eu-west-1")
        .await
        .unwrap()
        .get_routing_control_state()
        .routing_control_arn(&east)
        .send()
        .await
        .expect("the endpoint is back");
}

#[tokio::test]
async fn a_us_east_1_outage_in_the_fault_proxy_drops_only_that_endpoints_calls() {
    // GIVEN a cluster in front of the fault proxy, and us-east-1 lost there
    let proxy = FaultProxy::start(&moto().endpoint(), 7).await.unwrap();
    let arc = ArcCluster::start(&moto().endpoint(), &proxy.endpoint())
        .await
        .unwrap();
    let panel = arc.create_control_panel(&unique("panel")).await.unwrap();
    let east = arc
        .create_routing_control(&panel, "east", ControlState::On)
        .await
        .unwrap();
    proxy.add_rule(Rule::region_outage("us-east-1"));

    // WHEN every endpoint is asked to turn east Off
    for region in REGIONS {
        let result = arc
            .client(region)
            .await
            .unwrap()
            .update_routing_control_state()
            .routing_control_arn(&east)
            .routing_control_state(RoutingControlState::Off)
            .send()
            .await;
        // THEN only the us-east-1 endpoint's call is lost
        if region == "us-east-1" {
            let err = result.expect_err("us-east-1 is lost");
            assert!(is_unanswered(&err), "{err:?}");
        } else {
            result.expect("the other regions answer");
        }
    }

    // AND the proxy named each call by its signature: ARC's signing name, the endpoint's region
    // and the X-Amz-Target operation
    let calls: Vec<_> = proxy
        .calls()
        .into_iter()
        .filter(|c| c.service == "route53-recovery-cluster")
        .collect();
    assert_eq!(calls.len(), 5, "{calls:?}");
    for call in &calls {
        assert_eq!(call.operation, "UpdateRoutingControlState");
        let dropped = call.fault.as_deref() == Some("Drop");
        assert_eq!(dropped, call.region == "us-east-1", "{call:?}");
    }
    assert_eq!(arc.state(&east).await.unwrap(), ControlState::Off);
}

#[tokio::test]
async fn endpoints_answer_injected_errors_and_refuse_a_signature_for_another_region() {
    // GIVEN a control, and ap-northeast-1 temporarily unavailable for one call
    let arc = cluster().await;
    let panel = arc.create_control_panel(&unique("panel")).await.unwrap();
    let east = arc
        .create_routing_control(&panel, "east", ControlState::On)
        .await
        .unwrap();
    arc.inject(
        "ap-northeast-1",
        ArcFault::EndpointTemporarilyUnavailable,
        Some(1),
    )
    .await
    .unwrap();
    let client = arc.client("ap-northeast-1").await.unwrap();

    // WHEN it is called twice
    let err = client
        .get_routing_control_state()
        .routing_control_arn(&east)
        .send()
        .await
        .expect_err("the endpoint is unavailable");
    // THEN the first call gets ARC's 503 "try another cluster endpoint", the second an answer
    assert!(
        matches!(
            err.into_service_error(),
            GetRoutingControlStateError::EndpointTemporarilyUnavailableException(_)
        ),
        "expected EndpointTemporarilyUnavailableException"
    );
    client
        .get_routing_control_state()
        .routing_control_arn(&east)
        .send()
        .await
        .expect("one call only was hit");

    // WHEN a call to the us-east-1 endpoint is signed for us-west-2
    let url = arc.endpoint("us-east-1").unwrap();
    let misdirected =
        aws_sdk_route53recoverycluster::Client::new(aws(&url, "us-west-2").await.config());
    let err = misdirected
        .get_routing_control_state()
        .routing_control_arn(&east)
        .send()
        .await
        .expect_err("the signature names another region");
    // THEN it is refused as AWS refuses it
    assert_eq!(err.code(), Some("InvalidSignatureException"), "{err:?}");
}

#[tokio::test]
async fn a_function_role_without_the_grant_is_denied_and_the_admin_is_not() {
    // GIVEN a control, and tiering's role (template.yaml grants it nothing on ARC)
    let arc = cluster().await;
    let panel = arc.create_control_panel(&unique("panel")).await.unwrap();
    let east = arc
        .create_routing_control(&panel, "east", ControlState::On)
        .await
        .unwrap();
    let vars = breakwater_sandbox::iam::role_env("tiering", "us-east-1", &[]);
    let get = |name: &str| {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .expect("tiering has a role")
    };
    let credentials = Credentials::new(
        get("AWS_ACCESS_KEY_ID"),
        get("AWS_SECRET_ACCESS_KEY"),
        Some(get("AWS_SESSION_TOKEN")),
        None,
        "sandbox-role",
    );
    let url = arc.endpoint("us-west-2").unwrap();
    let base = aws(&url, "us-west-2").await;
    let as_role = aws_sdk_route53recoverycluster::Client::from_conf(
        aws_sdk_route53recoverycluster::config::Builder::from(base.config())
            .credentials_provider(credentials)
            .build(),
    );

    // WHEN the role turns east Off
    let err = as_role
        .update_routing_control_states()
        .update_routing_control_state_entries(entry(&east, "Off"))
        .send()
        .await
        .expect_err("not granted");
    // THEN it is AccessDeniedException and east stays On
    match err.into_service_error() {
        UpdateRoutingControlStatesError::AccessDeniedException(e) => {
            let message = e.message();
            assert!(
                message.contains("route53-recovery-cluster:UpdateRoutingControlStates"),
                "{message}"
            );
        }
        other => panic!("expected AccessDeniedException, got {other:?}"),
    }
    assert_eq!(arc.state(&east).await.unwrap(), ControlState::On);

    // AND the same call with the sandbox's admin key goes through
    arc.client("us-west-2")
        .await
        .unwrap()
        .update_routing_control_states()
        .update_routing_control_state_entries(entry(&east, "Off"))
        .send()
        .await
        .expect("the admin is not evaluated");
    assert_eq!(arc.state(&east).await.unwrap(), ControlState::Off);
}
