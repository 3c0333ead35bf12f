use kit::ErrorCode;
use kit::saga::{Op, SagaRef};
use mesh_proto::coupon::v1 as pb;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::helpers::{TestApp, code, fixed, spawn_app};

fn saga(id: &str, op: Op) -> Option<mesh_proto::saga::v1::SagaStep> {
    Some(SagaRef::new(id, "USE_COUPON", op).unwrap().to_proto())
}

async fn use_coupon(
    app: &TestApp,
    saga_id: &str,
    user_coupon_id: i64,
    user_id: i64,
    amount: i64,
) -> Result<pb::UseCouponResponse, tonic::Status> {
    let req = pb::UseCouponRequest {
        saga: saga(saga_id, Op::Action),
        user_coupon_id,
        user_id,
        order_id: format!("order-{saga_id}"),
        order_amount: amount,
    };
    app.client().use_coupon(req).await.map(tonic::Response::into_inner)
}

async fn restore(app: &TestApp, saga_id: &str, user_coupon_id: i64) -> pb::RestoreCouponResponse {
    let req = pb::RestoreCouponRequest { saga: saga(saga_id, Op::Compensate), user_coupon_id };
    app.client().restore_coupon(req).await.unwrap().into_inner()
}

async fn status_of(app: &TestApp, user_id: i64, user_coupon_id: i64) -> (i32, Option<String>) {
    let list = app.client().list_user_coupons(pb::ListUserCouponsRequest { user_id }).await.unwrap().into_inner();
    let uc = list.items.into_iter().find(|u| u.user_coupon_id == user_coupon_id).unwrap();
    (uc.status, uc.order_id)
}

#[tokio::test]
async fn use_is_once_restore_is_once_and_the_coupon_is_available_again() {
    let app = spawn_app().await;
    let coupon = app.create(fixed("Fixed 3000", 3_000, 10)).await;
    let uc = app.issue(coupon.id, 7).await.unwrap();
    let used = use_coupon(&app, "s1", uc.user_coupon_id, 7, 78_000).await.unwrap();
    assert_eq!((used.discount_amount, used.replayed), (3_000, false));
    assert_eq!(
        status_of(&app, 7, uc.user_coupon_id).await,
        (pb::UserCouponStatus::Used as i32, Some("order-s1".into()))
    );
    let again = use_coupon(&app, "s1", uc.user_coupon_id, 7, 78_000).await.unwrap();
    assert_eq!((again.discount_amount, again.replayed), (3_000, true));
    let other_order = use_coupon(&app, "s2", uc.user_coupon_id, 7, 78_000).await.unwrap_err();
    assert_eq!(code(&other_order), ErrorCode::CouponNotUsable, "a used coupon cannot pay another order");

    let restored = restore(&app, "s1", uc.user_coupon_id).await;
    assert_eq!((restored.restored, restored.null_compensation), (true, false));
    assert!(!restore(&app, "s1", uc.user_coupon_id).await.restored, "restored once only");
    assert_eq!(status_of(&app, 7, uc.user_coupon_id).await, (pb::UserCouponStatus::Available as i32, None));
}

#[tokio::test]
async fn a_restore_before_its_use_is_null_and_blocks_the_late_use() {
    let app = spawn_app().await;
    let coupon = app.create(fixed("Early", 1_000, 10)).await;
    let uc = app.issue(coupon.id, 8).await.unwrap();
    let early = restore(&app, "s3", uc.user_coupon_id).await;
    assert!(early.null_compensation);
    assert_eq!(
        code(&use_coupon(&app, "s3", uc.user_coupon_id, 8, 10_000).await.unwrap_err()),
        ErrorCode::InvalidStateTransition
    );
    assert_eq!(status_of(&app, 8, uc.user_coupon_id).await.0, pb::UserCouponStatus::Available as i32);
}

#[tokio::test]
async fn foreign_expired_and_missing_coupons_are_refused() {
    let app = spawn_app().await;
    let coupon = app.create(fixed("Mine", 1_000, 10)).await;
    let mine = app.issue(coupon.id, 1).await.unwrap();
    assert_eq!(
        code(&use_coupon(&app, "f1", mine.user_coupon_id, 2, 10_000).await.unwrap_err()),
        ErrorCode::CouponNotUsable
    );
    assert_eq!(code(&use_coupon(&app, "f2", 987_654, 1, 10_000).await.unwrap_err()), ErrorCode::NotFound);
    app.db()
        .await
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "UPDATE user_coupon SET expires_at = NOW(3) - INTERVAL 1 SECOND WHERE id = ?",
            [mine.user_coupon_id.into()],
        ))
        .await
        .unwrap();
    assert_eq!(
        code(&use_coupon(&app, "f3", mine.user_coupon_id, 1, 10_000).await.unwrap_err()),
        ErrorCode::CouponNotUsable
    );
    assert_eq!(status_of(&app, 1, mine.user_coupon_id).await.0, pb::UserCouponStatus::Expired as i32);
}

#[tokio::test]
async fn percent_discounts_round_down_and_respect_the_cap() {
    let app = spawn_app().await;
    let percent = |value, cap| pb::CreateCouponRequest {
        name: "Percent".into(),
        discount_type: pb::DiscountType::Percent as i32,
        discount_value: value,
        max_discount: cap,
        total_quantity: 10,
        valid_days: 7,
        ..Default::default()
    };
    let ten = app.create(percent(10, None)).await;
    let capped = app.create(percent(15, Some(5_000))).await;
    let a = app.issue(ten.id, 1).await.unwrap();
    let b = app.issue(capped.id, 1).await.unwrap();
    assert_eq!(use_coupon(&app, "p1", a.user_coupon_id, 1, 78_999).await.unwrap().discount_amount, 7_899);
    assert_eq!(use_coupon(&app, "p2", b.user_coupon_id, 1, 100_000).await.unwrap().discount_amount, 5_000);
    let expires = kit::time::from_proto(b.expires_at.as_ref().unwrap()).unwrap()
        - kit::time::from_proto(b.issued_at.as_ref().unwrap()).unwrap();
    assert_eq!(expires.num_days(), 7);
}

#[tokio::test]
async fn uses_racing_their_restores_always_end_available() {
    let app = spawn_app().await;
    let coupon = app.create(fixed("Race", 1_000, 100)).await;
    let mut ids = Vec::new();
    for user in 1..=30 {
        ids.push((user, app.issue(coupon.id, user).await.unwrap().user_coupon_id));
    }
    let races = ids.iter().map(|&(user, uc)| {
        let app = &app;
        async move {
            let id = format!("race-{user}");
            let (used, restored) = tokio::join!(use_coupon(app, &id, uc, user, 10_000), restore(app, &id, uc));
            // Either the use won and was undone, or the restore came first and refused it.
            if used.is_ok() {
                assert!(restored.restored);
            } else {
                assert!(restored.null_compensation);
            }
        }
    });
    futures::future::join_all(races).await;
    for (user, uc) in ids {
        assert_eq!(status_of(&app, user, uc).await.0, pb::UserCouponStatus::Available as i32);
    }
}
