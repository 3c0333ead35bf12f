use std::collections::HashMap;

use kit::ErrorCode;

use crate::helpers::{RESERVATION_MODES, spawn_app, spawn_app_with};

async fn race(app: &crate::helpers::TestApp, product: i64, buyers: usize) -> HashMap<&'static str, usize> {
    let calls = (0..buyers).map(|i| {
        let saga_id = format!("buyer-{i}");
        async move { app.reserve(&saga_id, &[(product, 1)]).await }
    });
    let mut outcomes = HashMap::new();
    for result in futures::future::join_all(calls).await {
        let key = match result {
            Ok(_) => "ok",
            Err(err) if err.code == ErrorCode::OutOfStock => {
                assert_eq!(err.product_id, Some(product));
                "out_of_stock"
            }
            Err(err) => panic!("unexpected error {err}"),
        };
        *outcomes.entry(key).or_default() += 1;
    }
    outcomes
}

#[tokio::test]
async fn a_thousand_buyers_for_a_hundred_units_sell_exactly_a_hundred() {
    for mode in RESERVATION_MODES {
        let app = spawn_app_with(mode).await;
        let p = app.create_product("Hot SKU", 1000, 100).await;
        let outcomes = race(&app, p.id, 1000).await;
        assert_eq!(outcomes.get("ok"), Some(&100));
        assert_eq!(outcomes.get("out_of_stock"), Some(&900));
        assert_eq!(app.stock_in_db(p.id).await, 0);
        let product = app.product(p.id).await;
        assert_eq!((product.stock, product.version), (0, 101));
    }
}

#[tokio::test]
async fn a_hundred_and_one_buyers_for_a_hundred_leave_exactly_one_out() {
    for mode in RESERVATION_MODES {
        let app = spawn_app_with(mode).await;
        let p = app.create_product("Limited", 1000, 100).await;
        let outcomes = race(&app, p.id, 101).await;
        assert_eq!(outcomes.get("ok"), Some(&100));
        assert_eq!(outcomes.get("out_of_stock"), Some(&1));
        assert_eq!(app.stock_in_db(p.id).await, 0);
    }
}

#[tokio::test]
async fn a_short_last_line_changes_nothing() {
    let app = spawn_app().await;
    let a = app.create_product("A", 10, 10).await;
    let b = app.create_product("B", 20, 10).await;
    let c = app.create_product("C", 30, 1).await;
    let err = app.reserve("three-lines", &[(c.id, 5), (a.id, 2), (b.id, 3)]).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::OutOfStock);
    assert_eq!(err.product_id, Some(c.id));
    for (p, stock) in [(&a, 10), (&b, 10), (&c, 1)] {
        let now = app.product(p.id).await;
        assert_eq!((now.stock, now.version), (stock, 1), "product {} untouched", p.name);
    }
    // The failed action left no barrier row: a later compensation is a null compensation.
    assert!(app.release("three-lines").await.unwrap().null_compensation);
}

#[tokio::test]
async fn a_reservation_prices_every_line_and_a_duplicate_takes_nothing_more() {
    let app = spawn_app().await;
    let a = app.create_product("A", 1500, 10).await;
    let b = app.create_product("B", 700, 10).await;
    let first = app.reserve("dup", &[(b.id, 2), (a.id, 1)]).await.unwrap();
    assert!(!first.replayed);
    let priced: Vec<(i64, i64, i64)> = first.lines.iter().map(|l| (l.product_id, l.quantity, l.unit_price)).collect();
    assert_eq!(priced, vec![(a.id, 1, 1500), (b.id, 2, 700)]);
    let again = app.reserve("dup", &[(b.id, 2), (a.id, 1)]).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.lines, first.lines);
    assert_eq!((app.stock_in_db(a.id).await, app.stock_in_db(b.id).await), (9, 8));
}

#[tokio::test]
async fn concurrent_duplicates_of_one_reservation_take_once() {
    for mode in RESERVATION_MODES {
        let app = spawn_app_with(mode).await;
        let p = app.create_product("P", 100, 50).await;
        let line = [(p.id, 5)];
        let calls = (0..20).map(|_| app.reserve("same-saga", &line));
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(results.iter().filter(|r| !r.as_ref().unwrap().replayed).count(), 1);
        assert_eq!(app.stock_in_db(p.id).await, 45);
    }
}

#[tokio::test]
async fn release_gives_back_exactly_what_was_reserved_once() {
    let app = spawn_app().await;
    let a = app.create_product("A", 1, 10).await;
    let b = app.create_product("B", 1, 10).await;
    app.reserve("r1", &[(a.id, 3), (b.id, 4)]).await.unwrap();
    // Another saga's reservation must not be touched by r1's release.
    app.reserve("r2", &[(a.id, 1)]).await.unwrap();
    let first = app.release("r1").await.unwrap();
    assert_eq!((first.released_units, first.null_compensation), (7, false));
    let second = app.release("r1").await.unwrap();
    assert_eq!((second.released_units, second.null_compensation), (0, false));
    assert_eq!((app.stock_in_db(a.id).await, app.stock_in_db(b.id).await), (9, 10));
    // A reserve retried after its release is refused (the step is over).
    let late = app.reserve("r1", &[(a.id, 3), (b.id, 4)]).await.unwrap_err();
    assert_eq!(late.code, ErrorCode::InvalidStateTransition);
    assert_eq!(app.stock_in_db(a.id).await, 9);
}

#[tokio::test]
async fn a_release_before_its_reserve_blocks_the_late_reserve() {
    for mode in RESERVATION_MODES {
        let app = spawn_app_with(mode).await;
        let p = app.create_product("P", 1, 10).await;
        let released = app.release("early").await.unwrap();
        assert!(released.null_compensation);
        let late = app.reserve("early", &[(p.id, 2)]).await.unwrap_err();
        assert_eq!(late.code, ErrorCode::InvalidStateTransition);
        assert_eq!(app.stock_in_db(p.id).await, 10);
    }
}

#[tokio::test]
async fn reserves_racing_their_releases_always_end_balanced() {
    for mode in RESERVATION_MODES {
        let app = spawn_app_with(mode).await;
        let p = app.create_product("P", 1, 1000).await;
        let line = [(p.id, 3)];
        let pairs = (0..60).map(|i| {
            let (app, line) = (&app, &line);
            let saga_id = format!("race-{i}");
            async move {
                let reserve = app.reserve(&saga_id, line);
                let release = app.release(&saga_id);
                // Half the pairs start the release first.
                if i % 2 == 0 {
                    let (r, c) = tokio::join!(reserve, release);
                    (r.is_ok(), c.unwrap())
                } else {
                    let (c, r) = tokio::join!(release, reserve);
                    (r.is_ok(), c.unwrap())
                }
            }
        });
        for (reserved, released) in futures::future::join_all(pairs).await {
            // Either the reserve won and the release undid it, or the release was a null
            // compensation and the reserve was refused; never a reserve left standing.
            if reserved {
                assert_eq!(released.released_units, 3);
            } else {
                assert!(released.null_compensation);
            }
        }
        assert_eq!(app.stock_in_db(p.id).await, 1000);
    }
}

#[tokio::test]
async fn malformed_saga_calls_are_validation_errors() {
    for mode in RESERVATION_MODES {
        let app = spawn_app_with(mode).await;
        let p = app.create_product("P", 1, 10).await;
        for lines in [vec![], vec![(p.id, 0)], vec![(p.id, 1001)], vec![(p.id, 1), (p.id, 1)], vec![(-4, 1)]] {
            let err = app.reserve("bad", &lines).await.unwrap_err();
            assert_eq!(err.code, ErrorCode::ValidationFailed, "{lines:?}");
        }
        let empty_saga = mesh_proto::saga::v1::SagaStep { saga_id: String::new(), step: "RESERVE_STOCK".into(), op: 1 };
        let req = mesh_proto::inventory::v1::ReserveStockRequest {
            saga: Some(empty_saga),
            lines: vec![mesh_proto::inventory::v1::StockLine { product_id: p.id, quantity: 1 }],
        };
        let status = app.client.clone().reserve_stock(req).await.unwrap_err();
        assert_eq!(crate::helpers::code_of(&status), ErrorCode::ValidationFailed);
        let missing = app.reserve("ghost", &[(p.id, 1), (p.id + 1000, 1)]).await.unwrap_err();
        assert_eq!((missing.code, missing.product_id), (ErrorCode::NotFound, Some(p.id + 1000)));
        assert_eq!(app.stock_in_db(p.id).await, 10);
    }
}

#[tokio::test]
async fn a_batch_of_mixed_quantities_never_takes_more_than_the_stock() {
    let app = spawn_app().await;
    let p = app.create_product("Mixed", 10, 50).await;
    let quantities: Vec<i64> = (0..120).map(|i| 1 + (i * 7) % 5).collect();
    let calls = quantities.iter().enumerate().map(|(i, &qty)| {
        let (app, saga_id) = (&app, format!("mixed-{i}"));
        async move { (saga_id.clone(), qty, app.reserve(&saga_id, &[(p.id, qty)]).await) }
    });
    let mut taken = 0;
    let mut rejected = Vec::new();
    for (saga_id, qty, result) in futures::future::join_all(calls).await {
        match result {
            Ok(reserved) => {
                assert_eq!(reserved.lines[0].quantity, qty);
                assert_eq!(reserved.lines[0].unit_price, 10);
                taken += qty;
            }
            Err(err) => {
                assert_eq!(err.code, ErrorCode::OutOfStock);
                rejected.push(saga_id);
            }
        }
    }
    assert!(taken <= 50 && taken > 45, "stock is used up to the last units that fit: {taken}");
    assert_eq!(app.stock_in_db(p.id).await, 50 - taken);
    // A rejected action leaves no barrier row: its compensation is a null compensation.
    for saga_id in rejected.iter().take(5) {
        assert!(app.release(saga_id).await.unwrap().null_compensation);
    }
}

#[tokio::test]
async fn a_hot_reservation_of_a_missing_product_is_not_found_and_leaves_nothing() {
    let app = spawn_app().await;
    let err = app.reserve("ghost-hot", &[(987_654, 1)]).await.unwrap_err();
    assert_eq!((err.code, err.product_id), (ErrorCode::NotFound, Some(987_654)));
    assert!(app.release("ghost-hot").await.unwrap().null_compensation);
}

#[tokio::test]
async fn buyers_of_many_products_at_once_are_decided_each_on_its_own_product() {
    for mode in RESERVATION_MODES {
        let app = spawn_app_with(mode).await;
        // Five products of 10 units and one that does not exist; 30 buyers of each, every
        // call sent twice (a retry): batches mix products, duplicates and refusals.
        let mut products = Vec::new();
        for n in 0..5 {
            products.push(app.create_product(&format!("P{n}"), 100 + n, 10).await.id);
        }
        let missing = 987_654;
        let calls = products.iter().chain([&missing]).flat_map(|&product| {
            (0..30).flat_map(move |i| {
                let saga_id = format!("mix-{product}-{i}");
                [(saga_id.clone(), product), (saga_id, product)]
            })
        });
        let answers = futures::future::join_all(calls.map(|(saga_id, product)| {
            let app = &app;
            async move { (saga_id.clone(), product, app.reserve(&saga_id, &[(product, 1)]).await) }
        }))
        .await;
        for &product in products.iter().chain([&missing]) {
            let mine: Vec<_> = answers.iter().filter(|(_, p, _)| *p == product).collect();
            let sold: std::collections::BTreeSet<&str> =
                mine.iter().filter(|(_, _, a)| a.is_ok()).map(|(s, _, _)| s.as_str()).collect();
            for (saga_id, _, answer) in &mine {
                match answer {
                    Ok(reply) => {
                        assert_eq!(
                            reply.lines[0].unit_price,
                            100 + products.iter().position(|&p| p == product).unwrap() as i64
                        );
                    }
                    Err(err) if product == missing => {
                        assert_eq!(err.code, ErrorCode::NotFound, "{saga_id} mode {mode}: {err}")
                    }
                    Err(err) => {
                        assert_eq!((err.code, err.product_id), (ErrorCode::OutOfStock, Some(product)), "{saga_id}");
                        assert!(!sold.contains(saga_id.as_str()), "{saga_id}: both copies get one answer");
                    }
                }
            }
            if product == missing {
                assert!(sold.is_empty());
                continue;
            }
            assert_eq!(sold.len(), 10, "product {product} (mode {mode}): exactly its stock sold");
            assert_eq!(app.stock_in_db(product).await, 0);
        }
    }
}
