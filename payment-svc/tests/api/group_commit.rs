//! The journal's group commit at the store: a batch of starts and a batch of completions
//! each take one transaction and a statement per table, and a batch in which one driver was
//! fenced off settles the others and tells that one apart, as one by one would.

use std::time::Duration;

use payment_svc::domain::{Order, OrderId, OrderStatus, PlaceOrder};
use payment_svc::saga::locks::UserLocks;
use payment_svc::store::{Completion, NewCheckout, StartOutcome, Store, WriteError, Writer};

const OWNER: &str = "group-commit-test";

fn checkout(user: i64) -> NewCheckout {
    let key = format!("group-{user}");
    NewCheckout {
        id: OrderId::from_idempotency_key("test", &key),
        request: PlaceOrder::parse(user, &[(7, 1)], None).unwrap(),
        idem_scope: "test".into(),
        idem_key: key,
        idem_hash: vec![1; 32],
        owner: OWNER.into(),
        fence: UserLocks::resource(user),
        at: kit::time::now_millis(),
        trace_parent: None,
    }
}

fn completion(checkout: &NewCheckout, epoch: i64) -> Completion {
    let mut order = Order::new_checkout(&checkout.id, &checkout.request, checkout.at);
    order.status = OrderStatus::Completed;
    order.lines[0].unit_price = 500;
    (order.total_amount, order.paid_amount) = (500, 500);
    order.updated_at = kit::time::now_millis();
    Completion { writer: Writer { owner: OWNER.into(), fence: checkout.fence.clone(), epoch }, order, step_rows: false }
}

#[tokio::test]
async fn batches_of_starts_and_completions_commit_once_and_a_fenced_driver_is_told_apart() {
    let schema = format!("{}pay", kit::testing::unique_prefix());
    let mut db = kit::db::connect_and_migrate::<payment_migration::Migrator>(&kit::testing::mysql_url(), &schema, 4)
        .await
        .unwrap();
    let sql = kit::db::SqlCounters::install(&mut db);
    let store = Store::new(db, sql.clone(), Duration::from_secs(30));

    let checkouts: Vec<NewCheckout> = (1..=6).map(checkout).collect();
    let before = sql.snapshot();
    let epochs: Vec<i64> = store
        .start_checkouts(&checkouts)
        .await
        .into_iter()
        .map(|started| match started {
            StartOutcome::Started { epoch } => epoch,
            other => panic!("a fresh checkout did not start: {other:?}"),
        })
        .collect();
    let spent = sql.snapshot().since(before);
    assert_eq!(epochs, vec![1; 6], "every user's first epoch");
    assert_eq!((spent.transactions, spent.statements()), (1, 4), "epochs returned by their upsert: {spent:?}");

    // Three drivers that still own their sagas: one transaction, one guarded UPDATE for all.
    let owned: Vec<Completion> = checkouts[..3].iter().map(|c| completion(c, 1)).collect();
    let before = sql.snapshot();
    let results = store.complete_checkouts(&owned).await;
    let spent = sql.snapshot().since(before);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!((spent.transactions, spent.statements()), (1, 3), "settle, prices, payments: {spent:?}");

    // The fifth user's lock went to another driver (a newer epoch): its completion is fenced
    // off, the other two settle.
    kit::redlock::mint_epoch(store.db(), &checkouts[4].fence).await.unwrap();
    let mixed: Vec<Completion> = checkouts[3..].iter().map(|c| completion(c, 1)).collect();
    let results = store.complete_checkouts(&mixed).await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(matches!(results[1], Err(WriteError::Fenced)), "{results:?}");
    for (c, status) in checkouts.iter().zip(["SETTLED", "SETTLED", "SETTLED", "SETTLED", "FORWARD", "SETTLED"]) {
        let phase = store.saga(&c.id).await.unwrap().map(|s| format!("{:?}", s.phase).to_uppercase());
        assert_eq!(phase.as_deref(), Some(status), "saga of {}", c.fence);
    }
    kit::testing::cleanup_blocking(vec![schema], None);
}
