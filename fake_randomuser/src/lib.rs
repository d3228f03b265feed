//! An offline stand-in for the randomuser.me 1.4 API: same URL, parameters and response
//! shape, deterministic per seed and page, fast enough to feed benchmarks.

mod data;
mod generate;
mod shape;

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::Query,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::Utc;
use serde_json::json;

pub use generate::{FIELDS, Gender, MAX_RESULTS, UserQuery, users};

/// The routes: `/api/`, `/api` and the versioned `/api/1.4/`.
pub fn router() -> Router {
    Router::new()
        .route("/api", get(serve_users))
        .route("/api/", get(serve_users))
        .route("/api/1.4", get(serve_users))
        .route("/api/1.4/", get(serve_users))
}

async fn serve_users(Query(params): Query<HashMap<String, String>>) -> Response {
    let query = match UserQuery::parse(&params) {
        Ok(query) => query,
        Err(message) => {
            return (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response();
        }
    };
    let body = tokio::task::spawn_blocking(move || response_body(&query)).await;
    match body {
        Ok(body) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": error.to_string() })),
        )
            .into_response(),
    }
}

/// The JSON body for a query, as bytes; large requests are generated and serialized on every
/// core (each user depends only on seed, page and index, so the order is unchanged).
pub fn response_body(query: &UserQuery) -> Vec<u8> {
    const PER_THREAD_MIN: usize = 250;
    let now = Utc::now();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, query.results.div_ceil(PER_THREAD_MIN).max(1));
    let chunk = query.results.div_ceil(threads).max(1);
    let parts: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..query.results)
            .step_by(chunk)
            .map(|start| {
                let end = (start + chunk).min(query.results);
                scope.spawn(move || generate::write_users(query, start..end, now))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let mut body = Vec::with_capacity(parts.iter().map(Vec::len).sum::<usize>() + 256);
    body.extend_from_slice(b"{\"results\":[");
    for (i, part) in parts.iter().filter(|p| !p.is_empty()).enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(part);
    }
    body.push(b']');
    if !query.noinfo {
        let info = json!({ "seed": query.seed, "results": query.results, "page": query.page, "version": "1.4" });
        body.extend_from_slice(b",\"info\":");
        body.extend_from_slice(&serde_json::to_vec(&info).unwrap_or_default());
    }
    body.push(b'}');
    body
}

impl UserQuery {
    /// Reads the API's query parameters; the error names the parameter and what it accepts.
    pub fn parse(params: &HashMap<String, String>) -> Result<Self, String> {
        let results = match params.get("results").map(|v| v.trim()) {
            None | Some("") => 1,
            Some(text) => text.parse::<usize>().map_err(|_| {
                format!("results must be a whole number from 1 to {MAX_RESULTS}, got {text:?}")
            })?,
        };
        if results > MAX_RESULTS {
            return Err(format!(
                "results={results} is more than the {MAX_RESULTS} users one request may ask for"
            ));
        }
        let page = match params.get("page").map(|v| v.trim()) {
            None | Some("") => 1,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| format!("page must be a whole number from 1, got {text:?}"))?,
        };
        if let Some(format) = params
            .get("format")
            .filter(|f| !f.eq_ignore_ascii_case("json"))
        {
            return Err(format!("format={format} is not served here: only json"));
        }
        Ok(Self {
            results: results.max(1),
            seed: params
                .get("seed")
                .filter(|s| !s.is_empty())
                .cloned()
                .unwrap_or_else(generate::random_seed),
            page,
            nats: parse_nats(params.get("nat"))?,
            gender: parse_gender(params.get("gender"))?,
            include: parse_fields("inc", params.get("inc"))?,
            exclude: parse_fields("exc", params.get("exc"))?,
            noinfo: params.contains_key("noinfo"),
        })
    }
}

fn parse_nats(value: Option<&String>) -> Result<Vec<&'static data::Nat>, String> {
    list(value)
        .map(|code| {
            data::NATS
                .iter()
                .find(|n| n.code.eq_ignore_ascii_case(code))
                .ok_or_else(|| {
                    let known: Vec<&str> = data::NATS.iter().map(|n| n.code).collect();
                    format!("unknown nat {code:?}: expected some of {}", known.join(","))
                })
        })
        .collect()
}

fn parse_gender(value: Option<&String>) -> Result<Option<Gender>, String> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") => Ok(None),
        Some("male") => Ok(Some(Gender::Male)),
        Some("female") => Ok(Some(Gender::Female)),
        Some(other) => Err(format!("gender must be male or female, got {other:?}")),
    }
}

fn parse_fields(param: &str, value: Option<&String>) -> Result<Vec<String>, String> {
    list(value)
        .map(|field| {
            let field = field.to_ascii_lowercase();
            if FIELDS.contains(&field.as_str()) {
                Ok(field)
            } else {
                Err(format!(
                    "{param}: unknown field {field:?}: expected some of {}",
                    FIELDS.join(",")
                ))
            }
        })
        .collect()
}

fn list(value: Option<&String>) -> impl Iterator<Item = &str> {
    value
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests;
