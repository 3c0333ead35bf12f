use serde_json::{Value, json};

use crate::helpers::{TestMesh, expect_problem, spawn_mesh};

impl TestMesh {
    async fn create_coupon(&self, body: Value) -> reqwest::Response {
        self.http.post(self.url("/v1/coupons")).json(&body).send().await.unwrap()
    }

    async fn issue(&self, coupon_id: &Value, user_id: i64) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/v1/coupons/{coupon_id}/issue")))
            .json(&json!({"userId": user_id}))
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn create_issue_and_list() {
    let mesh = spawn_mesh().await;
    let resp = mesh
        .create_coupon(
            json!({"name": "Black Friday", "discountType": "PERCENT", "discountValue": 15, "maxDiscount": 5000,
                              "totalQuantity": 2, "issueStartsAt": null, "issueEndsAt": null, "validDays": 7}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let coupon: Value = resp.json().await.unwrap();
    for (field, value) in [
        ("name", json!("Black Friday")),
        ("discountType", json!("PERCENT")),
        ("discountValue", json!(15)),
        ("maxDiscount", json!(5000)),
        ("totalQuantity", json!(2)),
        ("issuedQuantity", json!(0)),
        ("remainingQuantity", json!(2)),
        ("issueStartsAt", Value::Null),
        ("issueEndsAt", Value::Null),
        ("validDays", json!(7)),
    ] {
        assert_eq!(coupon[field], value, "{field}");
    }
    let issued = mesh.issue(&coupon["id"], 7).await;
    assert_eq!(issued.status(), 201);
    let issued: Value = issued.json().await.unwrap();
    let keys: Vec<&str> = issued.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 7, "exactly the documented fields: {keys:?}");
    assert_eq!(
        (issued["sequence"].clone(), issued["status"].clone(), issued["userId"].clone()),
        (json!(1), json!("AVAILABLE"), json!(7))
    );

    expect_problem(mesh.issue(&coupon["id"], 7).await, 409, "COUPON_ALREADY_ISSUED").await;
    assert_eq!(mesh.issue(&coupon["id"], 8).await.status(), 201);
    expect_problem(mesh.issue(&coupon["id"], 9).await, 409, "COUPON_SOLD_OUT").await;
    expect_problem(mesh.issue(&json!(987_654), 9).await, 404, "NOT_FOUND").await;

    let list: Value = mesh.http.get(mesh.url("/v1/users/7/coupons")).send().await.unwrap().json().await.unwrap();
    let item = &list["items"][0];
    assert_eq!(
        (item["name"].clone(), item["discountType"].clone(), item["status"].clone()),
        (json!("Black Friday"), json!("PERCENT"), json!("AVAILABLE"))
    );
    assert_eq!(
        (item["usedAt"].clone(), item["orderId"].clone(), item["maxDiscount"].clone()),
        (Value::Null, Value::Null, json!(5000))
    );
}

#[tokio::test]
async fn three_hundred_users_race_for_thirty_over_http() {
    let mesh = spawn_mesh().await;
    let coupon: Value = mesh
        .create_coupon(json!({"name": "Race", "discountType": "FIXED", "discountValue": 1000, "totalQuantity": 30}))
        .await
        .json()
        .await
        .unwrap();
    let calls = (1..=300).map(|user| mesh.issue(&coupon["id"], user));
    let mut sequences = Vec::new();
    for resp in futures::future::join_all(calls).await {
        if resp.status() == 201 {
            sequences.push(resp.json::<Value>().await.unwrap()["sequence"].as_i64().unwrap());
        } else {
            expect_problem(resp, 409, "COUPON_SOLD_OUT").await;
        }
    }
    sequences.sort_unstable();
    assert_eq!(sequences, (1..=30).collect::<Vec<_>>());
}

#[tokio::test]
async fn every_coupon_validation_row_is_a_400() {
    let mesh = spawn_mesh().await;
    let base = json!({"name": "X", "discountType": "FIXED", "discountValue": 100, "totalQuantity": 10});
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = base.clone();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases = vec![
        (without("name"), "name"),
        (with("name", json!("")), "name"),
        (with("name", json!("n".repeat(201))), "name"),
        (with("discountType", json!("BOGO")), "discountType"),
        (without("discountType"), "discountType"),
        (with("discountValue", json!(0)), "discountValue"),
        (with("discountValue", json!(1_000_000_001)), "discountValue"),
        (with("discountValue", json!("100")), "discountValue"),
        (with("maxDiscount", json!(500)), "maxDiscount"),
        (json!({"name": "P", "discountType": "PERCENT", "discountValue": 101, "totalQuantity": 1}), "discountValue"),
        (
            json!({"name": "P", "discountType": "PERCENT", "discountValue": 10, "maxDiscount": 0, "totalQuantity": 1}),
            "maxDiscount",
        ),
        (with("totalQuantity", json!(0)), "totalQuantity"),
        (with("totalQuantity", json!(10_000_001)), "totalQuantity"),
        (without("totalQuantity"), "totalQuantity"),
        (with("validDays", json!(0)), "validDays"),
        (with("validDays", json!(3651)), "validDays"),
        (with("validDays", json!(99_999_999_999i64)), "validDays"),
        (with("issueStartsAt", json!("tomorrow")), "issueStartsAt"),
        (
            json!({"name": "W", "discountType": "FIXED", "discountValue": 1, "totalQuantity": 1,
                   "issueStartsAt": "2026-12-01T00:00:00Z", "issueEndsAt": "2026-11-01T00:00:00Z"}),
            "issueEndsAt",
        ),
    ];
    for (body, field) in cases {
        let problem = expect_problem(mesh.create_coupon(body.clone()).await, 400, "VALIDATION_FAILED").await;
        assert_eq!(problem["field"], field, "{body}");
    }
    let coupon: Value = mesh.create_coupon(base.clone()).await.json().await.unwrap();
    assert_eq!(coupon["validDays"], 30, "the default");
    let bad_issue = mesh.http.post(mesh.url("/v1/coupons/abc/issue")).json(&json!({"userId": 1})).send().await.unwrap();
    assert_eq!(expect_problem(bad_issue, 400, "VALIDATION_FAILED").await["field"], "couponId");
    let no_user =
        mesh.http.post(mesh.url(&format!("/v1/coupons/{}/issue", coupon["id"]))).json(&json!({})).send().await.unwrap();
    assert_eq!(expect_problem(no_user, 400, "VALIDATION_FAILED").await["field"], "userId");
    let zero_user = mesh.issue(&coupon["id"], 0).await;
    assert_eq!(expect_problem(zero_user, 400, "VALIDATION_FAILED").await["field"], "userId");
}

#[tokio::test]
async fn outside_the_window_is_not_issuable() {
    let mesh = spawn_mesh().await;
    let coupon: Value = mesh
        .create_coupon(json!({"name": "Later", "discountType": "FIXED", "discountValue": 1, "totalQuantity": 5,
                              "issueStartsAt": "2099-01-01T00:00:00Z", "issueEndsAt": null}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(coupon["issueStartsAt"], "2099-01-01T00:00:00.000Z");
    expect_problem(mesh.issue(&coupon["id"], 1).await, 409, "COUPON_NOT_ISSUABLE").await;
}

impl TestMesh {
    async fn get_json(&self, path: &str) -> Value {
        let resp = self.http.get(self.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().await.unwrap()
    }

    async fn named_coupon(&self, name: &str, total: i64) -> Value {
        let resp = self
            .create_coupon(json!({"name": name, "discountType": "FIXED", "discountValue": 500, "totalQuantity": total}))
            .await;
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }
}

#[tokio::test]
async fn get_coupon_counts_what_mysql_issued_and_is_documented() {
    let mesh = spawn_mesh().await;
    let created = mesh
        .create_coupon(json!({"name": "Spring", "discountType": "PERCENT", "discountValue": 10, "maxDiscount": 2000,
                              "totalQuantity": 3, "issueStartsAt": "2020-01-01T00:00:00Z", "validDays": 14}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    for user in [1, 2] {
        assert_eq!(mesh.issue(&created["id"], user).await.status(), 201);
    }
    let coupon = mesh.get_json(&format!("/v1/coupons/{}", created["id"])).await;
    let mut keys: Vec<&str> = coupon.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "createdAt",
            "discountType",
            "discountValue",
            "id",
            "issueEndsAt",
            "issueStartsAt",
            "issuedQuantity",
            "maxDiscount",
            "name",
            "remainingQuantity",
            "totalQuantity",
            "validDays"
        ]
    );
    assert_eq!((coupon["issuedQuantity"].clone(), coupon["remainingQuantity"].clone()), (json!(2), json!(1)));
    let mut expected = created.clone();
    expected["issuedQuantity"] = json!(2);
    expected["remainingQuantity"] = json!(1);
    assert_eq!(coupon, expected, "the created coupon, with MySQL's count");
    assert_eq!(coupon["issueStartsAt"], "2020-01-01T00:00:00.000Z");
    assert!(chrono::DateTime::parse_from_rfc3339(coupon["createdAt"].as_str().unwrap()).is_ok());

    let missing = mesh.http.get(mesh.url("/v1/coupons/987654")).send().await.unwrap();
    expect_problem(missing, 404, "NOT_FOUND").await;
    for bad in ["abc", "0", "-3", "1.5", "99999999999999999999"] {
        let resp = mesh.http.get(mesh.url(&format!("/v1/coupons/{bad}"))).send().await.unwrap();
        assert_eq!(expect_problem(resp, 400, "VALIDATION_FAILED").await["field"], "couponId", "{bad}");
    }

    let spec = mesh.get_json("/openapi.json").await;
    assert!(spec["paths"]["/v1/coupons"]["get"].is_object(), "the listing is documented");
    assert!(spec["paths"]["/v1/coupons/{couponId}"]["get"].is_object(), "the read is documented");
    let body = &spec["components"]["schemas"]["CouponBody"]["properties"];
    for field in ["createdAt", "issueStartsAt", "issueEndsAt"] {
        assert_eq!(body[field]["format"], "date-time", "{field}: {}", body[field]);
    }
}

#[tokio::test]
async fn coupon_list_pages_newest_first_within_bounds() {
    let mesh = spawn_mesh().await;
    let empty = mesh.get_json("/v1/coupons").await;
    assert_eq!(empty, json!({"items": [], "page": 0, "size": 20, "totalItems": 0}));
    let mut ids = Vec::new();
    for n in 1..=5 {
        ids.push(mesh.named_coupon(&format!("C{n}"), 10).await["id"].clone());
    }
    for user in [1, 2, 3] {
        assert_eq!(mesh.issue(&ids[2], user).await.status(), 201);
    }
    let names = |page: &Value| -> Vec<String> {
        page["items"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
    };

    let all = mesh.get_json("/v1/coupons").await;
    assert_eq!((all["page"].clone(), all["size"].clone(), all["totalItems"].clone()), (json!(0), json!(20), json!(5)));
    assert_eq!(names(&all), ["C5", "C4", "C3", "C2", "C1"], "newest first");
    let c3 = &all["items"][2];
    assert_eq!((c3["issuedQuantity"].clone(), c3["remainingQuantity"].clone()), (json!(3), json!(7)));

    for (query, expected) in [
        ("page=0&size=2", vec!["C5", "C4"]),
        ("page=1&size=2", vec!["C3", "C2"]),
        ("page=2&size=2", vec!["C1"]),
        ("page=3&size=2", vec![]),
        ("page=100000&size=100", vec![]),
        ("size=1", vec!["C5"]),
        ("size=100&sort=newest", vec!["C5", "C4", "C3", "C2", "C1"]),
    ] {
        let page = mesh.get_json(&format!("/v1/coupons?{query}")).await;
        assert_eq!(names(&page), expected, "{query}");
        assert_eq!(page["totalItems"], 5, "{query}: past the end still counts every coupon");
    }
    let second = mesh.get_json("/v1/coupons?page=1&size=2").await;
    assert_eq!((second["page"].clone(), second["size"].clone()), (json!(1), json!(2)));
    assert_eq!(second["items"][0]["issuedQuantity"], 3);

    for (query, field) in [
        ("size=0", "size"),
        ("size=101", "size"),
        ("size=-5", "size"),
        ("size=ten", "size"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("page=1.5", "page"),
        ("page=100001", "page"),
        ("page=9223372036854775807&size=100", "page"),
        ("page=99999999999999999999", "page"),
        ("sort=oldest", "sort"),
        ("sort=", "sort"),
        ("page=%ZZ", "query"),
    ] {
        let resp = mesh.http.get(mesh.url(&format!("/v1/coupons?{query}"))).send().await.unwrap();
        assert_eq!(expect_problem(resp, 400, "VALIDATION_FAILED").await["field"], field, "{query}");
    }
}
