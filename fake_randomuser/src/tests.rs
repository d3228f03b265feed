use std::collections::HashMap;

use axum::body::Body;
use serde_json::Value;
use tower::ServiceExt as _;

use super::*;

fn query(pairs: &[(&str, &str)]) -> Result<UserQuery, String> {
    let params: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    UserQuery::parse(&params)
}

fn body(pairs: &[(&str, &str)]) -> Value {
    serde_json::from_slice(&response_body(&query(pairs).unwrap())).unwrap()
}

/// Every path of a real 1.4 result, with the JSON type it has there.
const SHAPE: &[(&str, &str)] = &[
    ("/gender", "string"),
    ("/name/title", "string"),
    ("/name/first", "string"),
    ("/name/last", "string"),
    ("/location/street/number", "number"),
    ("/location/street/name", "string"),
    ("/location/city", "string"),
    ("/location/state", "string"),
    ("/location/country", "string"),
    ("/location/coordinates/latitude", "string"),
    ("/location/coordinates/longitude", "string"),
    ("/location/timezone/offset", "string"),
    ("/location/timezone/description", "string"),
    ("/email", "string"),
    ("/login/uuid", "string"),
    ("/login/username", "string"),
    ("/login/password", "string"),
    ("/login/salt", "string"),
    ("/login/md5", "string"),
    ("/login/sha1", "string"),
    ("/login/sha256", "string"),
    ("/dob/date", "string"),
    ("/dob/age", "number"),
    ("/registered/date", "string"),
    ("/registered/age", "number"),
    ("/phone", "string"),
    ("/cell", "string"),
    ("/id/name", "string"),
    ("/picture/large", "string"),
    ("/picture/medium", "string"),
    ("/picture/thumbnail", "string"),
    ("/nat", "string"),
];

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[test]
fn every_field_of_a_real_result_is_there() {
    let body = body(&[("results", "300"), ("seed", "shape")]);
    let users = body["results"].as_array().unwrap();
    assert_eq!(users.len(), 300);
    for user in users {
        for (path, kind) in SHAPE {
            let value = user
                .pointer(path)
                .unwrap_or_else(|| panic!("{path} missing in {user}"));
            assert_eq!(json_type(value), *kind, "{path} in {user}");
        }
        assert!(user.pointer("/location/postcode").is_some());
        assert!(user.pointer("/id/value").is_some());
        let age = user["dob"]["age"].as_i64().unwrap();
        assert!((17..=78).contains(&age), "age {age}");
        let uuid = user["login"]["uuid"].as_str().unwrap();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4", "a v4 uuid: {uuid}");
        assert_eq!(user["login"]["sha256"].as_str().unwrap().len(), 64);
        assert!(user["email"].as_str().unwrap().ends_with("@example.com"));
    }
    assert_eq!(body["info"]["seed"], "shape");
    assert_eq!(body["info"]["results"], 300);
    assert_eq!(body["info"]["page"], 1);
    assert_eq!(body["info"]["version"], "1.4");
}

#[test]
fn hashes_are_of_password_and_salt() {
    use sha1::Digest as _;
    let user = &body(&[("seed", "hash")])["results"][0]["login"];
    let salted = format!(
        "{}{}",
        user["password"].as_str().unwrap(),
        user["salt"].as_str().unwrap()
    );
    let expected = format!("{:x}", sha2::Sha256::digest(salted.as_bytes()));
    assert_eq!(user["sha256"], expected.as_str());
}

#[test]
fn same_seed_and_page_give_the_same_users() {
    let a = body(&[("results", "50"), ("seed", "abc"), ("page", "2")]);
    let b = body(&[("results", "50"), ("seed", "abc"), ("page", "2")]);
    assert_eq!(a, b);
    let other_page = body(&[("results", "50"), ("seed", "abc"), ("page", "3")]);
    assert_ne!(a["results"], other_page["results"]);
    let other_seed = body(&[("results", "50"), ("seed", "abd"), ("page", "2")]);
    assert_ne!(a["results"], other_seed["results"]);
    // A smaller request is a prefix of a larger one, as with the real API.
    let first_ten = body(&[("results", "10"), ("seed", "abc"), ("page", "2")]);
    assert_eq!(
        first_ten["results"].as_array().unwrap()[..],
        a["results"].as_array().unwrap()[..10]
    );
    let unseeded = body(&[("results", "1")]);
    assert_eq!(unseeded["info"]["seed"].as_str().unwrap().len(), 16);
}

#[test]
fn nat_gender_inc_exc_and_noinfo_filter() {
    let body = body(&[
        ("results", "200"),
        ("nat", "us,FR"),
        ("gender", "female"),
        ("seed", "f"),
    ]);
    let users = body["results"].as_array().unwrap();
    let nats: std::collections::BTreeSet<&str> =
        users.iter().map(|u| u["nat"].as_str().unwrap()).collect();
    assert_eq!(nats, ["FR", "US"].into_iter().collect());
    assert!(users.iter().all(|u| u["gender"] == "female"));
    let fr = users.iter().find(|u| u["nat"] == "FR").unwrap();
    assert_eq!(fr["location"]["country"], "France");

    let only = self::body(&[("inc", "gender,nat,login"), ("noinfo", "")]);
    let keys: Vec<&String> = only["results"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["gender", "login", "nat"]);
    assert!(only.get("info").is_none());

    let without = self::body(&[("exc", "login,picture")]);
    let user = without["results"][0].as_object().unwrap();
    assert!(!user.contains_key("login") && !user.contains_key("picture"));
    assert!(user.contains_key("name"));
}

#[test]
fn bad_parameters_are_refused_with_the_reason() {
    let error = query(&[("results", "5001")]).unwrap_err();
    assert!(error.contains("5000"), "{error}");
    assert!(query(&[("results", "5000")]).is_ok());
    let error = query(&[("results", "ten")]).unwrap_err();
    assert!(
        error.contains("results") && error.contains("ten"),
        "{error}"
    );
    let error = query(&[("nat", "US,XX")]).unwrap_err();
    assert!(error.contains("\"XX\""), "{error}");
    let error = query(&[("gender", "other")]).unwrap_err();
    assert!(error.contains("gender"), "{error}");
    let error = query(&[("inc", "name,shoe")]).unwrap_err();
    assert!(error.contains("inc") && error.contains("shoe"), "{error}");
    let error = query(&[("page", "0")]).unwrap_err();
    assert!(error.contains("page"), "{error}");
    let error = query(&[("format", "xml")]).unwrap_err();
    assert!(error.contains("xml"), "{error}");
}

#[tokio::test]
async fn the_router_serves_the_api_paths() {
    for path in [
        "/api/?results=3&seed=x",
        "/api?results=3&seed=x",
        "/api/1.4/?results=3&seed=x",
    ] {
        let response = router()
            .oneshot(axum::http::Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["results"].as_array().unwrap().len(), 3, "{path}");
    }
    let response = router()
        .oneshot(
            axum::http::Request::get("/api/?results=9999")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(body["error"].as_str().unwrap().contains("5000"));
}

#[test]
fn a_body_made_on_several_threads_keeps_the_order() {
    let query = query(&[("results", "1200"), ("seed", "threads")]).unwrap();
    let body: Value = serde_json::from_slice(&response_body(&query)).unwrap();
    let expected = users(&query, chrono::Utc::now());
    assert_eq!(body["results"].as_array().unwrap(), &expected);
}

#[test]
fn coordinates_read_as_the_float_formatted_to_four_decimals() {
    use crate::shape::{Degrees, WriteJson as _};
    let around = |centre: u64| centre.saturating_sub(20_000)..centre + 20_000;
    let drawn = around(90_000_000)
        .chain(around(180_000_000))
        .chain(0..20_000)
        .chain((0..200_000u64).map(|i| i.wrapping_mul(0x9E37_79B9) % 360_000_000));
    for drawn in drawn {
        for offset in [90, 180] {
            let degrees = Degrees { drawn, offset };
            let expected = format!("\"{:.4}\"", degrees.as_f64());
            let mut written = Vec::new();
            degrees.write_json(&mut written);
            assert_eq!(
                String::from_utf8(written).unwrap(),
                expected,
                "{drawn} / 1e6 - {offset}"
            );
        }
    }
}

/// A seed gives the same users on every release: these three were written by the generator
/// that built a `serde_json::Value` per user, before users were written field by field.
#[test]
fn a_seed_gives_the_users_it_always_gave() {
    let now = chrono::DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z")
        .unwrap()
        .to_utc();
    let query = query(&[
        ("results", "3"),
        ("seed", "golden"),
        ("page", "2"),
        ("nat", "ch,fr,tr,ca"),
    ])
    .unwrap();
    let expected: Value = serde_json::from_str(include_str!("golden_users.json")).unwrap();
    assert_eq!(Value::from(users(&query, now)), expected);
}

#[test]
fn fields_come_in_the_real_apis_order() {
    let body = response_body(&query(&[("results", "1"), ("seed", "order")]).unwrap());
    let text = String::from_utf8(body).unwrap();
    let order = [
        "gender",
        "name",
        "location",
        "email",
        "login",
        "dob",
        "registered",
        "phone",
        "cell",
        "id",
        "picture",
        "nat",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|key| text.find(&format!("\"{key}\":")).unwrap())
        .collect();
    assert!(at.is_sorted(), "{text}");
    let login = [
        "uuid", "username", "password", "salt", "md5", "sha1", "sha256",
    ];
    let at: Vec<usize> = login
        .iter()
        .map(|key| text.find(&format!("\"{key}\":")).unwrap())
        .collect();
    assert!(at.is_sorted(), "{text}");
}

#[test]
fn strings_are_written_as_json_and_escaped_where_needed() {
    use crate::shape::WriteJson as _;
    for text in ["Genève", "plain", "", "a \"quoted\" \\ back\nslash\t\u{1}"] {
        let mut written = Vec::new();
        text.write_json(&mut written);
        let back: String = serde_json::from_slice(&written).unwrap();
        assert_eq!(back, text);
    }
}
