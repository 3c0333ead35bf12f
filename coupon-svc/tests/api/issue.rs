use kit::ErrorCode;
use mesh_proto::coupon::v1 as pb;

use crate::helpers::{code, fixed, race, spawn_app, spawn_replicas};

#[tokio::test]
async fn two_thousand_users_race_for_a_hundred() {
    let app = spawn_app().await;
    let coupon = app.create(fixed("Black Friday", 3_000, 100)).await;
    let (sequences, errors) = race(&app, coupon.id, 1..=2_000).await;
    assert_eq!(sequences, (1..=100).collect::<Vec<_>>(), "exactly 1..=100, no gap, no repeat");
    assert_eq!(errors.get(&ErrorCode::CouponSoldOut), Some(&1_900));
    assert_eq!(app.issued_in_db(coupon.id).await, (100, 1, 100, 100));
    let after = app.client().get_coupon(pb::GetCouponRequest { id: coupon.id }).await.unwrap().into_inner();
    assert_eq!((after.issued_quantity, after.remaining_quantity), (100, 0));
    let late = app.issue(coupon.id, 5_000).await.unwrap_err();
    assert_eq!(code(&late), ErrorCode::CouponSoldOut);
}

#[tokio::test]
async fn one_user_a_hundred_times_gets_one_copy() {
    let app = spawn_app().await;
    let coupon = app.create(fixed("Once", 1_000, 50)).await;
    let (sequences, errors) = race(&app, coupon.id, std::iter::repeat_n(7, 100)).await;
    assert_eq!(sequences, vec![1]);
    assert_eq!(errors.get(&ErrorCode::CouponAlreadyIssued), Some(&99));
    assert_eq!(app.issued_in_db(coupon.id).await, (1, 1, 1, 1));
}

#[tokio::test]
async fn a_redis_flush_mid_campaign_never_issues_twice_or_past_n() {
    let app = spawn_app().await;
    let coupon = app.create(fixed("Flushed", 500, 100)).await;
    let (first, _) = race(&app, coupon.id, 1..=50).await;
    assert_eq!(first.len(), 50);
    app.flush_redis().await;
    // The first 50 holders come back along with 300 newcomers.
    let (second, errors) = race(&app, coupon.id, 1..=350).await;
    assert_eq!(second, (51..=100).collect::<Vec<_>>());
    assert_eq!(errors.get(&ErrorCode::CouponAlreadyIssued), Some(&50), "no holder issued again");
    assert_eq!(errors.get(&ErrorCode::CouponSoldOut), Some(&250));
    assert_eq!(app.issued_in_db(coupon.id).await, (100, 1, 100, 100));
}

#[tokio::test]
async fn a_gate_that_lost_its_holders_is_overruled_by_mysql() {
    let app = spawn_app().await;
    let coupon = app.create(fixed("Stale gate", 500, 10)).await;
    race(&app, coupon.id, 1..=5).await;
    // A gate rebuilt from nothing (e.g. a restored old snapshot): it forgets users 1..=5.
    app.flush_redis().await;
    let mut redis = kit::cache::connect(&kit::testing::redis_url()).await.unwrap();
    let _: () = redis::cmd("ZADD").arg(app.gate_key(coupon.id)).arg(0).arg("_").query_async(&mut redis).await.unwrap();
    let (sequences, errors) = race(&app, coupon.id, 1..=20).await;
    assert_eq!(errors.get(&ErrorCode::CouponAlreadyIssued), Some(&5), "MySQL still knows the holders");
    assert_eq!(sequences, (6..=10).collect::<Vec<_>>());
    assert_eq!(app.issued_in_db(coupon.id).await, (10, 1, 10, 10));
}

#[tokio::test]
async fn two_replicas_racing_still_issue_exactly_n() {
    let app = spawn_replicas(2).await;
    let coupon = app.create(fixed("Two replicas", 100, 150)).await;
    let (sequences, errors) = race(&app, coupon.id, 1..=1_000).await;
    assert_eq!(sequences, (1..=150).collect::<Vec<_>>());
    assert_eq!(errors.get(&ErrorCode::CouponSoldOut), Some(&850));
    assert_eq!(app.issued_in_db(coupon.id).await, (150, 1, 150, 150));
}

#[tokio::test]
async fn an_admission_lost_by_a_crash_is_reconciled() {
    let app = spawn_app().await;
    let coupon = app.create(fixed("Crash", 100, 2)).await;
    app.issue(coupon.id, 1).await.unwrap();
    // A replica admitted user 2 a minute ago and died before writing MySQL.
    app.plant_stale_admission(coupon.id, 2).await;
    assert_eq!(
        code(&app.issue(coupon.id, 3).await.unwrap_err()),
        ErrorCode::CouponSoldOut,
        "the phantom holds the copy"
    );
    assert_eq!(app.coupons[0].reconcile().await.unwrap(), 1);
    let issued = app.issue(coupon.id, 3).await.expect("the copy is issuable again");
    assert_eq!(issued.sequence, 2);
    assert_eq!(app.coupons[0].reconcile().await.unwrap(), 0, "real holders are never dropped");
    assert_eq!(app.issued_in_db(coupon.id).await, (2, 1, 2, 2));
}

#[tokio::test]
async fn the_issue_window_and_unknown_coupons() {
    let app = spawn_app().await;
    let now = chrono::Utc::now();
    let mut future = fixed("Tomorrow", 100, 10);
    future.issue_starts_at = Some(kit::time::to_proto(now + chrono::Duration::days(1)));
    let future = app.create(future).await;
    assert_eq!(code(&app.issue(future.id, 1).await.unwrap_err()), ErrorCode::CouponNotIssuable);
    let mut past = fixed("Yesterday", 100, 10);
    past.issue_starts_at = Some(kit::time::to_proto(now - chrono::Duration::days(2)));
    past.issue_ends_at = Some(kit::time::to_proto(now - chrono::Duration::days(1)));
    let past = app.create(past).await;
    assert_eq!(code(&app.issue(past.id, 1).await.unwrap_err()), ErrorCode::CouponNotIssuable);
    assert_eq!(code(&app.issue(987_654, 1).await.unwrap_err()), ErrorCode::NotFound);
    assert_eq!(code(&app.issue(future.id, 0).await.unwrap_err()), ErrorCode::ValidationFailed);
}

#[tokio::test]
async fn every_creation_rule_is_a_validation_error() {
    let app = spawn_app().await;
    let percent = |value, cap| pb::CreateCouponRequest {
        name: "P".into(),
        discount_type: pb::DiscountType::Percent as i32,
        discount_value: value,
        max_discount: cap,
        total_quantity: 10,
        ..Default::default()
    };
    let now = chrono::Utc::now();
    let cases: Vec<(pb::CreateCouponRequest, &str)> = vec![
        (pb::CreateCouponRequest { name: String::new(), ..fixed("", 1, 1) }, "name"),
        (pb::CreateCouponRequest { discount_type: 0, ..fixed("X", 1, 1) }, "discountType"),
        (fixed("X", 0, 1), "discountValue"),
        (fixed("X", 1_000_000_001, 1), "discountValue"),
        (pb::CreateCouponRequest { max_discount: Some(5), ..fixed("X", 10, 1) }, "maxDiscount"),
        (percent(0, None), "discountValue"),
        (percent(101, None), "discountValue"),
        (percent(10, Some(0)), "maxDiscount"),
        (fixed("X", 1, 0), "totalQuantity"),
        (fixed("X", 1, 10_000_001), "totalQuantity"),
        (pb::CreateCouponRequest { valid_days: 3651, ..fixed("X", 1, 1) }, "validDays"),
        (pb::CreateCouponRequest { valid_days: -1, ..fixed("X", 1, 1) }, "validDays"),
        (
            pb::CreateCouponRequest {
                issue_starts_at: Some(kit::time::to_proto(now)),
                issue_ends_at: Some(kit::time::to_proto(now - chrono::Duration::hours(1))),
                ..fixed("X", 1, 1)
            },
            "issueEndsAt",
        ),
    ];
    for (req, field) in cases {
        let status = app.client().create_coupon(req).await.unwrap_err();
        let err = kit::ServiceError::from_status(&status);
        assert_eq!((err.code, err.field.as_deref()), (ErrorCode::ValidationFailed, Some(field)));
    }
    let ok = app.create(pb::CreateCouponRequest { valid_days: 0, ..fixed("Default days", 1, 1) }).await;
    assert_eq!(ok.valid_days, 30);
}
