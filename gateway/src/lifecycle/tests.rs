use super::*;

fn policy(
    set_by: SetBy,
    modality: Option<&str>,
    label: Option<&str>,
    period_days: i64,
) -> RetentionPolicy {
    RetentionPolicy {
        set_by,
        modality: modality.map(str::to_string),
        label: label.map(str::to_string),
        period_days,
        counted_from: CountedFrom::Receipt,
        notice_days: 7,
        grace_days: 14,
        action: RetentionAction::HidePurge,
    }
}

fn life(modalities: &[&str], labels: &[&str]) -> StudyLife {
    StudyLife {
        study_uid: "2.25.1".into(),
        study_date: Some("20260101".into()),
        modalities: modalities.iter().map(|m| m.to_string()).collect(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        state: LifecycleState::Active,
        received_at: 1_000 * DAY,
        keep_until: None,
        notice_at: None,
        hidden_at: None,
        exported_at: None,
        instances: 3,
        series: 1,
    }
}

#[test]
fn the_most_specific_policy_applies_and_the_facility_overrides() {
    let policies = vec![
        policy(SetBy::Operator, None, None, 365),
        policy(SetBy::Operator, Some("CT"), None, 30),
        policy(SetBy::Facility, Some("CT"), None, 60),
        policy(SetBy::Operator, None, Some("keep-10y"), 3650),
    ];
    let period = |l: &StudyLife| policy_for(&policies, l).map(|p| p.period_days);
    assert_eq!(period(&life(&["MR"], &[])), Some(365));
    assert_eq!(
        period(&life(&["CT"], &[])),
        Some(60),
        "facility beats operator"
    );
    assert_eq!(period(&life(&["ct", "PT"], &[])), Some(60));
    assert_eq!(
        period(&life(&["CT"], &["keep-10y"])),
        Some(3650),
        "label beats modality"
    );
    assert_eq!(policy_for(&[], &life(&["CT"], &[])), None);
}

#[test]
fn a_study_goes_through_notice_hidden_and_purge_on_time() {
    let p = policy(SetBy::Operator, None, None, 30);
    let mut l = life(&["CT"], &[]);
    let day = |n: i64| l.received_at + n * DAY;
    assert_eq!(step(Some(&p), &l, day(22)), None);
    assert_eq!(step(Some(&p), &l, day(23)), Some(Step::Notice));
    l.state = LifecycleState::Expiring;
    l.notice_at = Some(day(23));
    assert_eq!(step(Some(&p), &l, day(29)), None);
    assert_eq!(step(Some(&p), &l, day(30)), Some(Step::Hide));
    l.state = LifecycleState::Hidden;
    l.hidden_at = Some(day(30));
    assert_eq!(step(Some(&p), &l, day(43)), None);
    assert_eq!(step(Some(&p), &l, day(44)), Some(Step::Purge));
    // Without a policy a hidden study is not purged.
    assert_eq!(step(None, &l, day(400)), None);
}

#[test]
fn a_late_notice_still_gives_the_full_notice_period() {
    // The policy arrives after the period has ended: notice now, hide 7 days later.
    let p = policy(SetBy::Operator, None, None, 30);
    let mut l = life(&["CT"], &[]);
    let day = |n: i64| l.received_at + n * DAY;
    assert_eq!(step(Some(&p), &l, day(100)), Some(Step::Notice));
    l.state = LifecycleState::Expiring;
    l.notice_at = Some(day(100));
    assert_eq!(step(Some(&p), &l, day(106)), None);
    assert_eq!(step(Some(&p), &l, day(107)), Some(Step::Hide));
}

#[test]
fn keep_moves_the_end_and_notify_never_hides() {
    let mut p = policy(SetBy::Operator, None, None, 30);
    let mut l = life(&["CT"], &[]);
    let day = |n: i64| l.received_at + n * DAY;
    l.keep_until = Some(day(90));
    assert_eq!(schedule(&p, &l).ends_at, day(90));
    assert_eq!(step(Some(&p), &l, day(82)), None);
    assert_eq!(step(Some(&p), &l, day(83)), Some(Step::Notice));
    // A notice given, then the period extended: back to active.
    l.state = LifecycleState::Expiring;
    l.notice_at = Some(day(83));
    l.keep_until = Some(day(200));
    assert_eq!(step(Some(&p), &l, day(90)), Some(Step::Reactivate));
    p.action = RetentionAction::Notify;
    l.keep_until = None;
    assert_eq!(
        step(Some(&p), &l, day(1000)),
        None,
        "notify only: never hidden"
    );
}

#[test]
fn study_date_counts_from_midnight_utc() {
    let mut p = policy(SetBy::Operator, None, None, 10);
    p.counted_from = CountedFrom::StudyDate;
    let mut l = life(&["CT"], &[]);
    let jan_1_2026 = 1_767_225_600_000;
    assert_eq!(schedule(&p, &l).ends_at, jan_1_2026 + 10 * DAY);
    l.study_date = Some("garbage".into());
    assert_eq!(schedule(&p, &l).ends_at, l.received_at + 10 * DAY);
}
