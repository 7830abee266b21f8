//! How level 2 holds a node group down, and how it is undone field by field so that a size the
//! autoscaler or a person changed since is kept (and reported) while the others go back.
//!
//! EKS `NodegroupScalingConfig` (Amazon EKS API reference): `minSize` and `desiredSize` have a
//! minimum of 0, `maxSize` a minimum of 1, and an update must keep min ≤ desired ≤ max. Cluster
//! Autoscaler raises `desiredSize` up to `maxSize` while pods are pending ("When the Cluster
//! Autoscaler is used, the desiredSize parameter is altered by the Cluster Autoscaler"), so
//! leaving `max` where it was would let it scale the group straight back up: the hold lowers
//! `max` too, to the floor (at least 1).

use breakwater::ports::Scaling;

/// The sizes that hold a node group at `floor`: min, desired and max lowered to the floor (max
/// to at least 1, EKS's minimum). No size is ever raised, so min ≤ desired ≤ max still holds.
pub fn hold(current: Scaling, floor: i32) -> Scaling {
    let floor = floor.max(0);
    Scaling {
        min: current.min.min(floor),
        desired: current.desired.min(floor),
        max: current.max.min(floor.max(1)),
    }
}

/// What undoing a hold does to a node group found with some sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    /// Every size is back to what it was before enforcement: nothing to do.
    AlreadyBack,
    /// Put these sizes. `kept` names the sizes changed since enforcement (by the autoscaler or a
    /// person), left as found or, for `desired`, only moved into the restored min..max.
    Put {
        /// The sizes to put.
        target: Scaling,
        /// The sizes changed since enforcement, in words (empty: a whole restore).
        kept: Vec<String>,
    },
    /// Nothing enforcement set is still there to undo: left as found.
    LeftAlone {
        /// The sizes changed since enforcement, in words.
        kept: Vec<String>,
    },
}

/// Restores each size that still holds the value enforcement set (`after`) to its value before
/// (`before`); a size changed since is kept and reported. When `desired` was kept (Cluster
/// Autoscaler moves it) and falls outside the restored min..max, it is moved to the nearest bound,
/// because EKS refuses desired < min or desired > max; if min > max would remain (a person lowered
/// max), nothing is changed.
pub fn undo(before: Scaling, after: Scaling, found: Scaling) -> Undo {
    if found == before {
        return Undo::AlreadyBack;
    }
    let mut target = found;
    let mut kept = Vec::new();
    let mut restorable = false;
    let fields: [(&str, i32, i32, i32, &mut i32); 3] = [
        ("min", before.min, after.min, found.min, &mut target.min),
        (
            "desired",
            before.desired,
            after.desired,
            found.desired,
            &mut target.desired,
        ),
        ("max", before.max, after.max, found.max, &mut target.max),
    ];
    for (name, was, left, now, slot) in fields {
        if now == left && now != was {
            *slot = was;
            restorable = true;
        } else if now != was {
            kept.push(format!(
                "{name} {now} (enforcement left {left}, it was {was})"
            ));
        }
    }
    if !restorable {
        return Undo::LeftAlone { kept };
    }
    if target.min > target.max {
        kept.push(format!(
            "min {} cannot go back above max {}",
            before.min, target.max
        ));
        return Undo::LeftAlone { kept };
    }
    let desired = target.desired.clamp(target.min, target.max);
    if desired != target.desired {
        kept.push(format!(
            "desired moved from {} to {desired} to fit min {} / max {}",
            target.desired, target.min, target.max
        ));
        target.desired = desired;
    }
    Undo::Put { target, kept }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn s(min: i32, desired: i32, max: i32) -> Scaling {
        Scaling { min, desired, max }
    }

    #[test]
    fn the_hold_lowers_max_so_the_autoscaler_cannot_scale_back_up_and_never_raises_a_size() {
        // GIVEN groups of various sizes and floors
        // WHEN held
        // THEN min, desired and max are at the floor (max at least 1, EKS's minimum)
        assert_eq!(hold(s(2, 4, 6), 0), s(0, 0, 1));
        assert_eq!(hold(s(2, 4, 6), 2), s(2, 2, 2));
        assert_eq!(hold(s(0, 1, 3), 2), s(0, 1, 2));
        assert_eq!(hold(s(0, 0, 1), 0), s(0, 0, 1));
        for (current, floor) in [(s(2, 4, 6), 0), (s(1, 1, 1), 5), (s(0, 3, 10), 1)] {
            let held = hold(current, floor);
            assert!(held.min <= held.desired && held.desired <= held.max && held.max >= 1);
            assert!(held.min <= current.min && held.desired <= current.desired);
            assert!(held.max <= current.max);
        }
    }

    #[test]
    fn undo_restores_each_size_enforcement_still_holds_and_keeps_the_others() {
        let before = s(2, 4, 6);
        let after = s(0, 0, 1);
        // untouched since: everything goes back
        assert_eq!(
            undo(before, after, after),
            Undo::Put {
                target: before,
                kept: vec![]
            }
        );
        // Cluster Autoscaler raised desired to the held max: min and max go back, desired is
        // the autoscaler's and only moves up to the restored min
        let Undo::Put { target, kept } = undo(before, after, s(0, 1, 1)) else {
            panic!("nothing restored");
        };
        assert_eq!(target, s(2, 2, 6));
        assert!(kept[0].starts_with("desired 1"), "{kept:?}");
        // a person raised max to 10: kept; min and desired go back
        let Undo::Put { target, kept } = undo(before, after, s(0, 0, 10)) else {
            panic!("nothing restored");
        };
        assert_eq!(target, s(2, 4, 10));
        assert_eq!(kept.len(), 1);
        assert!(kept[0].starts_with("max 10"), "{kept:?}");
        // a person resized everything: left alone
        assert!(matches!(
            undo(before, after, s(1, 1, 3)),
            Undo::LeftAlone { .. }
        ));
        // already back by hand
        assert_eq!(undo(before, after, before), Undo::AlreadyBack);
        // a person lowered max below the old min: nothing that would break min <= max
        assert!(matches!(
            undo(s(3, 4, 6), s(0, 0, 1), s(0, 0, 2)),
            Undo::LeftAlone { .. }
        ));
    }
}
