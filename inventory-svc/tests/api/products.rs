use kit::ErrorCode;
use mesh_proto::inventory::v1 as pb;

use crate::helpers::{code_of, spawn_app};

#[tokio::test]
async fn create_then_get_returns_the_product_with_version_1() {
    let app = spawn_app().await;
    let created = app.create_product("Keyboard", 39_000, 100).await;
    assert!(created.id > 0);
    assert_eq!(created.version, 1);
    let fetched = app.product(created.id).await;
    assert_eq!(fetched, created);
}

#[tokio::test]
async fn invalid_products_are_rejected_with_the_field() {
    let app = spawn_app().await;
    let cases =
        [("", 1, 1, "name"), ("x", -1, 1, "price"), ("x", 1, 1_000_000_001, "stock"), ("x", 1_000_000_001, 1, "price")];
    for (name, price, stock, field) in cases {
        let status = app
            .client
            .clone()
            .create_product(pb::CreateProductRequest { name: name.into(), price, stock })
            .await
            .unwrap_err();
        let err = kit::ServiceError::from_status(&status);
        assert_eq!(err.code, ErrorCode::ValidationFailed);
        assert_eq!(err.field.as_deref(), Some(field));
    }
    let list = app.client.clone().list_products(pb::ListProductsRequest::default()).await.unwrap().into_inner();
    assert_eq!(list.total_items, 0, "nothing was created");
}

#[tokio::test]
async fn unknown_product_is_not_found() {
    let app = spawn_app().await;
    let status = app.client.clone().get_product(pb::GetProductRequest { id: 999_999 }).await.unwrap_err();
    assert_eq!(code_of(&status), ErrorCode::NotFound);
}

#[tokio::test]
async fn list_filters_case_insensitively_sorts_and_pages() {
    let app = spawn_app().await;
    for (name, price) in [("Mechanical Keyboard", 90), ("keycap set", 10), ("Mouse", 50), ("KEY_LIGHT 100%", 30)] {
        app.create_product(name, price, 1).await;
    }
    let list = |name: &str, sort: pb::ProductSort, page: i64, size: i64| {
        let mut client = app.client.clone();
        let req = pb::ListProductsRequest { name_contains: name.into(), sort: sort as i32, page, size };
        async move { client.list_products(req).await.unwrap().into_inner() }
    };
    let keys = list("key", pb::ProductSort::PriceAsc, 0, 20).await;
    assert_eq!(keys.total_items, 3);
    let prices: Vec<i64> = keys.items.iter().map(|p| p.price).collect();
    assert_eq!(prices, vec![10, 30, 90]);
    let desc = list("", pb::ProductSort::PriceDesc, 0, 2).await;
    assert_eq!(desc.items.iter().map(|p| p.price).collect::<Vec<_>>(), vec![90, 50]);
    assert_eq!(desc.total_items, 4);
    let page1 = list("", pb::ProductSort::PriceDesc, 1, 2).await;
    assert_eq!(page1.items.iter().map(|p| p.price).collect::<Vec<_>>(), vec![30, 10]);
    let literal = list("100%", pb::ProductSort::Id, 0, 20).await;
    assert_eq!(literal.total_items, 1, "% is matched literally");
    let underscore = list("_", pb::ProductSort::Id, 0, 20).await;
    assert_eq!(underscore.total_items, 1, "_ is matched literally");
    let by_name = list("", pb::ProductSort::Name, 0, 20).await;
    assert_eq!(by_name.items[0].name, "KEY_LIGHT 100%");
    let newest = list("", pb::ProductSort::Newest, 0, 1).await;
    assert_eq!(newest.items[0].name, "KEY_LIGHT 100%");

    let status = app
        .client
        .clone()
        .list_products(pb::ListProductsRequest { size: 101, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(code_of(&status), ErrorCode::ValidationFailed);
}

#[tokio::test]
async fn set_stock_checks_the_version_and_bumps_it() {
    let app = spawn_app().await;
    let p = app.create_product("Desk", 100, 5).await;
    let updated = app
        .client
        .clone()
        .set_stock(pb::SetStockRequest { product_id: p.id, stock: 250, expected_version: Some(1) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((updated.stock, updated.version), (250, 2));
    let stale = app
        .client
        .clone()
        .set_stock(pb::SetStockRequest { product_id: p.id, stock: 1, expected_version: Some(1) })
        .await
        .unwrap_err();
    assert_eq!(code_of(&stale), ErrorCode::VersionMismatch);
    assert_eq!(app.product(p.id).await.stock, 250, "a stale write changes nothing");
    let missing = app
        .client
        .clone()
        .set_stock(pb::SetStockRequest { product_id: 987_654, stock: 1, expected_version: None })
        .await
        .unwrap_err();
    assert_eq!(code_of(&missing), ErrorCode::NotFound);
}

#[tokio::test]
async fn twenty_writers_with_the_same_version_one_wins() {
    let app = spawn_app().await;
    let p = app.create_product("Lamp", 100, 5).await;
    let writers = (0..20).map(|i| {
        let mut client = app.client.clone();
        async move {
            client.set_stock(pb::SetStockRequest { product_id: p.id, stock: 100 + i, expected_version: Some(1) }).await
        }
    });
    let results = futures::future::join_all(writers).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1);
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(code_of(err), ErrorCode::VersionMismatch);
    }
    assert_eq!(app.product(p.id).await.version, 2);
}

#[tokio::test]
async fn cached_reads_see_every_write() {
    let app = spawn_app().await;
    let p = app.create_product("Chair", 100, 10).await;
    assert_eq!(app.product(p.id).await.stock, 10); // fills the cache
    app.reserve("cache-saga", &[(p.id, 3)]).await.unwrap();
    let after_reserve = app.product(p.id).await;
    assert_eq!((after_reserve.stock, after_reserve.version), (7, 2));
    app.release("cache-saga").await.unwrap();
    let after_release = app.product(p.id).await;
    assert_eq!((after_release.stock, after_release.version), (10, 3));
    app.client
        .clone()
        .set_stock(pb::SetStockRequest { product_id: p.id, stock: 42, expected_version: None })
        .await
        .unwrap();
    assert_eq!(app.product(p.id).await.stock, 42);
}
