//! The savings report: what a bucket's storage costs now, what it costs once the lifecycle has
//! reached its steady state, the one-time cost of moving the backlog, and the payback time —
//! with every assumption stated. Prices are us-east-1's, per GB = 2^30 bytes.

use breakwater::ports::BucketStorage;
use breakwater::report::picture::{ClassBytes, StorageTiers};
use serde::Serialize;

use crate::policy::{Policy, ARCHIVE_MIN_BYTES, WARM_MIN_BYTES};

/// When the built-in prices were read.
pub const PRICES_AS_OF: &str = "2026-11, us-east-1";
const GIB: f64 = 1_073_741_824.0;

/// Storage price per GB-month of a CloudWatch storage type.
pub fn price_per_gb_month(storage_type: &str) -> f64 {
    match storage_type {
        "StandardIAStorage" => 0.0125,
        "GlacierInstantRetrievalStorage" => 0.004,
        "GlacierStorage" => 0.0036,
        "DeepArchiveStorage" => 0.00099,
        _ => 0.023,
    }
}

/// Transition request prices per 1,000 objects.
const TO_IA: f64 = 0.01;
const TO_GLACIER: f64 = 0.03;
const TO_DEEP_ARCHIVE: f64 = 0.05;

/// One bucket's estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Savings {
    /// The bucket.
    pub bucket: String,
    /// GB per storage type now.
    pub gb_by_storage_type: Vec<(String, f64)>,
    /// USD per month now.
    pub monthly_now: f64,
    /// USD per month at the steady state.
    pub monthly_steady: f64,
    /// The difference.
    pub monthly_saving: f64,
    /// USD, once, to transition the backlog.
    pub one_time_transition_cost: f64,
    /// Months until the saving has paid for the transitions.
    pub payback_months: Option<f64>,
    /// GB that stay in Standard because moving them would not pay.
    pub gb_left_in_standard: f64,
    /// Bytes per storage class now and at the steady state.
    pub classes: Vec<ClassBytes>,
    /// Every assumption made.
    pub assumptions: Vec<String>,
}

/// A CloudWatch `StorageType`'s class, as the S3 console names it.
pub fn class_name(storage_type: &str) -> &str {
    match storage_type {
        "StandardStorage" => "Standard",
        "StandardIAStorage" => "Standard-IA",
        "OneZoneIAStorage" => "One Zone-IA",
        "GlacierInstantRetrievalStorage" => "Glacier Instant Retrieval",
        "GlacierStorage" => "Glacier Flexible Retrieval",
        "DeepArchiveStorage" => "Glacier Deep Archive",
        other => other,
    }
}

/// The storage types of the lifecycle's hops, in order: hot, warm, cold, archive.
const HOPS: [&str; 4] = [
    "StandardStorage",
    "StandardIAStorage",
    "GlacierStorage",
    "DeepArchiveStorage",
];

/// Bytes per class now and once `fractions` of the Standard bytes have moved along the hops;
/// the hops first, then any other class the bucket holds (which the lifecycle leaves alone).
fn classes(storage: &BucketStorage, fractions: &[f64; 4]) -> Vec<ClassBytes> {
    let now = |t: &str| storage.bytes_by_storage_type.get(t).copied().unwrap_or(0.0);
    let standard = now("StandardStorage");
    let mut out: Vec<ClassBytes> = HOPS
        .iter()
        .zip(fractions)
        .enumerate()
        .map(|(i, (t, f))| ClassBytes {
            class: class_name(t).into(),
            now_bytes: now(t),
            steady_bytes: standard * f + if i == 0 { 0.0 } else { now(t) },
            usd_per_gb_month: price_per_gb_month(t),
        })
        .collect();
    out.extend(
        storage
            .bytes_by_storage_type
            .iter()
            .filter(|(t, _)| !HOPS.contains(&t.as_str()))
            .map(|(t, b)| ClassBytes {
                class: class_name(t).into(),
                now_bytes: *b,
                steady_bytes: *b,
                usd_per_gb_month: price_per_gb_month(t),
            }),
    );
    out
}

/// The roll-up of several estimates' classes, for one picture.
pub fn roll_up(estimates: &[Savings]) -> StorageTiers {
    let mut classes: Vec<ClassBytes> = Vec::new();
    for c in estimates.iter().flat_map(|s| &s.classes) {
        match classes.iter_mut().find(|o| o.class == c.class) {
            Some(o) => {
                o.now_bytes += c.now_bytes;
                o.steady_bytes += c.steady_bytes;
            }
            None => classes.push(c.clone()),
        }
    }
    StorageTiers {
        classes,
        monthly_now: estimates.iter().map(|s| s.monthly_now).sum(),
        monthly_steady: estimates.iter().map(|s| s.monthly_steady).sum(),
        basis: format!(
            "Steady state: Standard bytes spread over the hops by age, ages assumed uniform (no inventory read); prices {PRICES_AS_OF}."
        ),
    }
}

/// Estimates one bucket under `policy`.
pub fn estimate(bucket: &str, storage: &BucketStorage, policy: &Policy) -> Savings {
    let mut assumptions = vec![format!(
        "prices as of {PRICES_AS_OF}, storage per GB-month and transitions per 1,000 requests"
    )];
    let bytes = |t: &str| storage.bytes_by_storage_type.get(t).copied().unwrap_or(0.0);
    let total: f64 = storage.bytes_by_storage_type.values().sum();
    let standard = bytes("StandardStorage");
    let monthly_now: f64 = storage
        .bytes_by_storage_type
        .iter()
        .map(|(t, b)| b / GIB * price_per_gb_month(t))
        .sum();

    // Which Standard bytes a hop pays for: without an inventory, judge by the average object size.
    let average = storage.objects.filter(|n| *n > 0.0).map(|n| total / n);
    let archive_band = match average {
        Some(avg) if avg > ARCHIVE_MIN_BYTES as f64 => {
            assumptions.push(format!(
                "objects average {:.1} MiB: all of them pay for every hop",
                avg / 1_048_576.0
            ));
            Some(true)
        }
        Some(avg) if avg > WARM_MIN_BYTES as f64 => {
            assumptions.push(format!(
                "objects average {:.2} MiB: they pay for warm and cold, not for Deep Archive",
                avg / 1_048_576.0
            ));
            Some(false)
        }
        Some(avg) => {
            assumptions.push(format!("objects average {:.0} KiB: below 512 KiB a move costs more than it saves, so they stay", avg / 1024.0));
            None
        }
        None => {
            assumptions
                .push("no object count: every object is assumed large enough for every hop".into());
            Some(true)
        }
    };
    // Without an inventory, ages are assumed uniform over twice the archive age.
    let horizon = f64::from(policy.archive_days * 2);
    assumptions.push(format!(
        "object ages are uniform over the last {horizon:.0} days (no inventory was read)"
    ));
    let (w, c, a) = (
        f64::from(policy.warm_days),
        f64::from(policy.cold_days),
        f64::from(policy.archive_days),
    );
    let fractions = match archive_band {
        Some(true) => [
            w / horizon,
            (c - w) / horizon,
            (a - c) / horizon,
            (horizon - a) / horizon,
        ],
        Some(false) => [w / horizon, (c - w) / horizon, (horizon - c) / horizon, 0.0],
        None => [1.0, 0.0, 0.0, 0.0],
    };
    let steady_per_gb = fractions[0] * 0.023
        + fractions[1] * 0.0125
        + fractions[2] * 0.0036
        + fractions[3] * 0.00099;
    let others: f64 = storage
        .bytes_by_storage_type
        .iter()
        .filter(|(t, _)| *t != "StandardStorage")
        .map(|(t, b)| b / GIB * price_per_gb_month(t))
        .sum();
    let monthly_steady = others + standard / GIB * steady_per_gb;
    let objects_in_standard = storage.objects.map(|n| {
        if total > 0.0 {
            n * standard / total
        } else {
            0.0
        }
    });
    let beyond_standard = 1.0 - fractions[0];
    let one_time = objects_in_standard
        .map(|n| {
            n / 1000.0
                * (beyond_standard * TO_IA
                    + (fractions[2] + fractions[3]) * TO_GLACIER
                    + fractions[3] * TO_DEEP_ARCHIVE)
        })
        .unwrap_or(0.0);
    let saving = monthly_now - monthly_steady;
    let round = |x: f64| (x * 100.0).round() / 100.0;
    Savings {
        bucket: bucket.into(),
        gb_by_storage_type: storage
            .bytes_by_storage_type
            .iter()
            .map(|(t, b)| (t.clone(), round(b / GIB)))
            .collect(),
        monthly_now: round(monthly_now),
        monthly_steady: round(monthly_steady),
        monthly_saving: round(saving),
        one_time_transition_cost: round(one_time),
        payback_months: (saving > 0.0).then(|| round(one_time / saving)),
        gb_left_in_standard: round(if archive_band.is_none() {
            standard / GIB
        } else {
            0.0
        }),
        classes: classes(storage, &fractions),
        assumptions,
    }
}

/// The Markdown of an account's estimates, with the roll-up first.
pub fn markdown(estimates: &[Savings]) -> String {
    let now: f64 = estimates.iter().map(|s| s.monthly_now).sum();
    let steady: f64 = estimates.iter().map(|s| s.monthly_steady).sum();
    let once: f64 = estimates.iter().map(|s| s.one_time_transition_cost).sum();
    let mut md = format!(
        "# S3 tiering savings\n\nAccount: **${now:.2}/month now → ${steady:.2}/month at steady state**, saving ${:.2}/month ({:.0} %), after a one-time ${once:.2} of transitions.\n\n",
        now - steady,
        if now > 0.0 { (now - steady) / now * 100.0 } else { 0.0 }
    );
    md.push_str("| bucket | now $/month | steady $/month | saving $/month | one-time $ | payback (months) | GB left in Standard |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for s in estimates {
        md.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {:.2} |\n",
            s.bucket,
            s.monthly_now,
            s.monthly_steady,
            s.monthly_saving,
            s.one_time_transition_cost,
            s.payback_months
                .map(|m| format!("{m:.1}"))
                .unwrap_or_else(|| "—".into()),
            s.gb_left_in_standard
        ));
    }
    md.push_str("\n## Assumptions\n\n");
    let mut seen = std::collections::BTreeSet::new();
    for a in estimates.iter().flat_map(|s| &s.assumptions) {
        if seen.insert(a) {
            md.push_str(&format!("- {a}\n"));
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(standard_gib: f64, objects: Option<f64>) -> BucketStorage {
        BucketStorage {
            bytes_by_storage_type: [("StandardStorage".to_string(), standard_gib * GIB)].into(),
            objects,
        }
    }

    #[test]
    fn large_objects_reach_the_steady_state_by_hand() {
        // 1,000 GB of 4 MiB objects, default policy (30/90/365), ages uniform over 730 days:
        // 30/730 Standard, 60/730 IA, 275/730 Glacier, 365/730 Deep Archive.
        let s = estimate("b", &storage(1000.0, Some(256_000.0)), &Policy::default());
        let steady =
            1000.0 * (30.0 * 0.023 + 60.0 * 0.0125 + 275.0 * 0.0036 + 365.0 * 0.00099) / 730.0;
        assert_eq!(s.monthly_now, 23.0);
        assert!(
            (s.monthly_steady - steady).abs() < 0.01,
            "{} vs {steady}",
            s.monthly_steady
        );
        // 256,000 objects: 700/730 go to IA, 640/730 on to Glacier, 365/730 on to Deep Archive.
        let once = 256.0 * (700.0 * 0.01 + 640.0 * 0.03 + 365.0 * 0.05) / 730.0;
        assert!(
            (s.one_time_transition_cost - once).abs() < 0.01,
            "{} vs {once}",
            s.one_time_transition_cost
        );
        assert!(s.payback_months.unwrap() < 1.0);
        assert_eq!(s.gb_left_in_standard, 0.0);
    }

    #[test]
    fn small_objects_stay_and_say_why() {
        let s = estimate(
            "logs",
            &storage(100.0, Some(100.0 * 1_048_576.0)),
            &Policy::default(),
        );
        assert_eq!((s.monthly_saving, s.gb_left_in_standard), (0.0, 100.0));
        assert!(
            s.assumptions
                .iter()
                .any(|a| a.contains("1 KiB") && a.contains("stay")),
            "{:?}",
            s.assumptions
        );
        assert_eq!(s.payback_months, None);
    }

    #[test]
    fn the_markdown_rolls_up_the_account() {
        let a = estimate("a", &storage(1000.0, Some(256_000.0)), &Policy::default());
        let b = estimate(
            "b",
            &storage(10.0, Some(10.0 * 1_048_576.0)),
            &Policy::default(),
        );
        let md = markdown(&[a, b]);
        assert!(md.contains("$23.23/month now"), "{md}");
        assert!(md.contains("| b | 0.23 | 0.23 | 0.00 |"), "{md}");
        assert!(md.contains("prices as of 2026-11, us-east-1"));
    }
}
