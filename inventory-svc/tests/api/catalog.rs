//! The catalog: listing pages like the table, name search answers like a `LIKE` scan (the
//! collation's folding of case, accents, kana and width included), a cache that never hides a
//! created product, and an index that covers products older than itself.

use std::time::{Duration, Instant};

use kit::ErrorCode;
use mesh_proto::inventory::v1 as pb;
use pb::ProductSort;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};
use sea_orm_migration::MigratorTrait;

use crate::helpers::{code_of, spawn_app, spawn_app_configured};

/// Pieces of names: the same word in several forms the collation compares equal (case,
/// accents, kana, full width) or not (ß and ss, ø and o, one emoji and another), Korean
/// syllables that share their first jamo, and LIKE's own wildcards.
const PIECES: &[&str] = &[
    "Key",
    "key",
    "KEY",
    "board",
    "Café",
    "cafe",
    "CAFÉ",
    "naïve",
    "Straße",
    "strasse",
    "ø",
    "o",
    "カメラ",
    "かめら",
    "ｶﾒﾗ",
    "Ａｂｃ",
    "abc",
    "１２３",
    "123",
    "😀",
    "😁",
    "키보드",
    "키",
    "보드",
    "마우스",
    "가",
    "각",
    "50%",
    "off_",
    "a_b",
    "x-y",
    "É",
    "e",
    "Ü",
    "u",
    "ñ",
    "n",
    "ç",
    "Œuvre",
    "İstanbul",
    "ǅ",
    "ﬁ",
    "fi",
];

fn random_name(rng: &mut StdRng) -> String {
    let pieces = rng.random_range(2..=5);
    let mut name = String::new();
    for i in 0..pieces {
        if i > 0 && rng.random_bool(0.6) {
            name.push(' ');
        }
        name.push_str(PIECES[rng.random_range(0..PIECES.len())]);
    }
    name
}

/// A query a shopper might type for `name`: a piece of it, in another case, or another piece.
fn random_query(rng: &mut StdRng, names: &[String]) -> String {
    match rng.random_range(0..4) {
        0 => PIECES[rng.random_range(0..PIECES.len())].to_owned(),
        _ => {
            let chars: Vec<char> = names[rng.random_range(0..names.len())].chars().collect();
            let len = rng.random_range(1..=6.min(chars.len()));
            let start = rng.random_range(0..=chars.len() - len);
            let piece: String = chars[start..start + len].iter().collect();
            match rng.random_range(0..3) {
                0 => piece.to_uppercase(),
                1 => piece.to_lowercase(),
                _ => piece,
            }
        }
    }
}

fn like(needle: &str) -> String {
    let mut pattern = String::from("%");
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

async fn ids(db: &DatabaseConnection, sql: &str, values: Vec<Value>) -> Vec<i64> {
    let rows = db.query_all_raw(Statement::from_sql_and_values(DbBackend::MySql, sql, values)).await.unwrap();
    rows.iter().map(|row| row.try_get_by_index::<i64>(0).unwrap()).collect()
}

/// What a full scan with `LIKE` answers, in `order`.
async fn scan(db: &DatabaseConnection, needle: &str, order: &str) -> Vec<i64> {
    let sql = format!("SELECT p.id FROM product p WHERE p.name LIKE ? ESCAPE '\\\\' ORDER BY {order}");
    ids(db, &sql, vec![like(needle).into()]).await
}

fn item_ids(page: &pb::ListProductsResponse) -> Vec<i64> {
    page.items.iter().map(|p| p.id).collect()
}

#[tokio::test]
async fn the_name_column_uses_the_collation_the_index_folds_by() {
    let app = spawn_app().await;
    let db = app.db().await;
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT COLLATION_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'product' AND COLUMN_NAME = 'name'",
            [app.schema.clone().into()],
        ))
        .await
        .unwrap()
        .expect("product.name exists");
    assert_eq!(row.try_get_by_index::<String>(0).unwrap(), inventory_svc::store::NAME_COLLATION);
}

#[tokio::test]
async fn name_search_finds_exactly_what_a_like_scan_finds_korean_and_accents_included() {
    let app = spawn_app().await;
    let mut rng = StdRng::seed_from_u64(0x5ea2c4);
    let names: Vec<String> = (0..1_500).map(|_| random_name(&mut rng)).collect();
    for chunk in names.chunks(750) {
        let rows: Vec<_> = chunk.iter().map(|n| (n.clone(), rng.random_range(0..5) * 1_000, 10)).collect();
        app.import(&rows).await;
    }
    let db = app.db().await;
    let mut queries: Vec<String> = (0..300).map(|_| random_query(&mut rng, &names)).collect();
    queries.extend(
        ["%", "_", "50%", "a_b", "\\", "'", "😀", "ss", "SS", "ß", "ｶ", "カ", "か", "fi", "ﬁ", "i̇"].map(String::from),
    );
    let mut nonempty = 0;
    for query in &queries {
        let expected = scan(&db, query, "p.id").await;
        let page = app.list(query, ProductSort::Id, 0, 100).await;
        assert_eq!(page.total_items as usize, expected.len(), "count of {query:?}");
        assert_eq!(item_ids(&page), expected[..expected.len().min(100)], "first page of {query:?}");
        if expected.len() > 100 {
            let next = app.list(query, ProductSort::Id, 1, 100).await;
            assert_eq!(item_ids(&next), expected[100..expected.len().min(200)], "second page of {query:?}");
        }
        nonempty += usize::from(!expected.is_empty());
    }
    assert!(nonempty > 200, "the queries must mostly match something: {nonempty} of {} did", queries.len());
    // Pages past the first 1,000 matches (beyond what a ranking keeps) come from MySQL directly.
    let mut deep = 0;
    for query in ["e", "a", " ", "k", "o", "c", "y"] {
        if scan(&db, query, "p.id").await.len() <= 1_100 {
            continue;
        }
        deep += 1;
        for (sort, order) in [(ProductSort::Id, "p.id"), (ProductSort::PriceDesc, "p.price DESC, p.id DESC")] {
            let expected = scan(&db, query, order).await;
            for page in [9, 10] {
                let got = app.list(query, sort, page, 100).await;
                let from = page as usize * 100;
                assert_eq!(item_ids(&got), expected[from..from + 100], "{sort:?} page {page} of {query:?}");
                assert_eq!(got.total_items as usize, expected.len());
            }
        }
    }
    assert!(deep > 0, "no query matched enough products to page past the ranking");
    // The other sorts order the same matches the way the table does.
    for (sort, order) in [
        (ProductSort::Name, "p.name, p.id"),
        (ProductSort::PriceAsc, "p.price, p.id"),
        (ProductSort::PriceDesc, "p.price DESC, p.id DESC"),
        (ProductSort::Newest, "p.created_at DESC, p.id DESC"),
    ] {
        for query in queries.iter().take(25) {
            let expected = scan(&db, query, order).await;
            let page = app.list(query, sort, 0, 50).await;
            assert_eq!(item_ids(&page), expected[..expected.len().min(50)], "{sort:?} of {query:?}");
        }
    }
}

#[tokio::test]
async fn every_sort_pages_like_the_table_and_counts_without_a_scan() {
    let app = spawn_app_configured(|config| config.list_cache_ttl = Duration::ZERO).await;
    let rows: Vec<_> = (0..230).map(|i| (format!("Item {}", i % 37), (i % 7) * 500, i)).collect();
    app.import(&rows).await;
    app.create_product("Lone item", 250, 3).await;
    let db = app.db().await;
    for (sort, order) in [
        (ProductSort::Id, "p.id"),
        (ProductSort::Name, "p.name, p.id"),
        (ProductSort::PriceAsc, "p.price, p.id"),
        (ProductSort::PriceDesc, "p.price DESC, p.id DESC"),
        (ProductSort::Newest, "p.created_at DESC, p.id DESC"),
    ] {
        for page in 0..=3 {
            let sql = format!("SELECT p.id FROM product p ORDER BY {order} LIMIT 70 OFFSET ?");
            let expected = ids(&db, &sql, vec![(page * 70).into()]).await;
            let got = app.list("", sort, page, 70).await;
            assert_eq!(item_ids(&got), expected, "{sort:?} page {page}");
            assert_eq!(got.total_items, 231);
        }
    }
}

#[tokio::test]
async fn a_created_product_is_in_the_next_listing_and_stock_lags_at_most_the_cache_ttl() {
    let app = spawn_app().await;
    let first = app.create_product("Cached lamp", 900, 5).await;
    // A page size of its own: this listing is a miss, cached for a full TTL from now.
    let before = app.list("", ProductSort::Id, 0, 17).await;
    assert_eq!((before.total_items, before.items[0].stock), (1, 5));

    // Changed behind the service's back: the cached page still shows the old stock...
    let db = app.db().await;
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::MySql,
        "UPDATE product SET stock = 6 WHERE id = ?",
        [first.id.into()],
    ))
    .await
    .unwrap();
    let cached = app.list("", ProductSort::Id, 0, 17).await;
    assert_eq!(cached.items[0].stock, 5, "served from the page cache");

    // ...but a created product is in the very next listing (a new catalog generation)...
    let second = app.create_product("Cached lamp two", 950, 1).await;
    let after = app.list("", ProductSort::Id, 0, 17).await;
    assert_eq!(item_ids(&after), vec![first.id, second.id]);
    assert_eq!(after.total_items, 2);
    assert_eq!(app.list("LAMP", ProductSort::Id, 0, 17).await.total_items, 2);

    // ...and the stock is current again once the TTL (1 s) has passed.
    let deadline = Instant::now() + Duration::from_millis(1_500);
    app.client
        .clone()
        .set_stock(pb::SetStockRequest { product_id: first.id, stock: 7, expected_version: None })
        .await
        .unwrap();
    loop {
        let page = app.list("", ProductSort::Id, 0, 17).await;
        if page.items[0].stock == 7 {
            break;
        }
        assert!(Instant::now() < deadline, "a listing showed stale stock past the TTL");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn products_from_before_the_name_index_are_found_once_backfilled() {
    kit::testing::install_crypto_provider();
    let prefix = kit::testing::unique_prefix();
    let schema = format!("{prefix}inventory");
    // The schema as the previous version left it: products, no name index.
    let server = sea_orm::Database::connect(kit::testing::mysql_url()).await.unwrap();
    server.execute_unprepared(&format!("CREATE DATABASE `{schema}` COLLATE utf8mb4_unicode_ci")).await.unwrap();
    let db = sea_orm::Database::connect(format!("{}/{schema}", kit::testing::mysql_url())).await.unwrap();
    inventory_migration::Migrator::up(&db, Some(1)).await.unwrap();
    for i in 0..40 {
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "INSERT INTO product (name, price, stock, version, created_at, updated_at) VALUES (?, 100, 1, 1, NOW(3), NOW(3))",
            [format!("Vintage 레코드 {i}").into()],
        ))
        .await
        .unwrap();
    }

    let app = spawn_app_configured(|config| {
        config.service.database = schema.clone();
        config.service.redis_key_prefix = prefix.clone();
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = ids(&db, "SELECT backfill_cursor >= backfill_through FROM catalog_stat", vec![]).await;
        if ready == [1] {
            break;
        }
        assert!(Instant::now() < deadline, "the backfill did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let indexed = ids(&db, "SELECT COUNT(DISTINCT product_id) FROM product_gram", vec![]).await;
    assert_eq!(indexed, [40]);
    assert_eq!(app.list("", ProductSort::Id, 0, 10).await.total_items, 40);
    assert_eq!(app.list("레코드 1", ProductSort::Id, 0, 50).await.total_items, 11);
    assert_eq!(app.list("vintage", ProductSort::Id, 0, 50).await.total_items, 40);
    let created = app.create_product("Vintage 레코드 new", 100, 1).await;
    assert_eq!(item_ids(&app.list("코드 n", ProductSort::Id, 0, 50).await), vec![created.id]);
}

#[tokio::test]
async fn an_import_is_validated_whole_and_changes_nothing_when_refused() {
    let app = spawn_app().await;
    let product = |name: &str| pb::CreateProductRequest { name: name.into(), price: 100, stock: 1 };
    let refused = [
        vec![],
        vec![product("ok"); 1_001],
        vec![product("fine"), product("   ")],
        vec![product("fine"), pb::CreateProductRequest { name: "bad price".into(), price: -1, stock: 1 }],
    ];
    for products in refused {
        let err = app.client.clone().import_products(pb::ImportProductsRequest { products }).await.unwrap_err();
        assert_eq!(code_of(&err), ErrorCode::ValidationFailed);
    }
    assert_eq!(app.list("", ProductSort::Id, 0, 10).await.total_items, 0);
    let ids = app.import(&vec![("Thing".to_owned(), 1, 1); 1_000]).await;
    assert_eq!(ids.len(), 1_000);
    assert!(ids.windows(2).all(|w| w[1] > w[0]));
    assert_eq!(app.product(ids[999]).await.name, "Thing");
    assert_eq!(app.list("thing", ProductSort::Id, 0, 10).await.total_items, 1_000);
}
