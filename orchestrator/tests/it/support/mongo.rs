//! The MongoDB server `scripts/test` starts (`UPDRAFT_MONGO_URI`) and reading its documents.

use futures::TryStreamExt as _;
use mongodb::bson::Document;

pub fn mongo_uri() -> String {
    std::env::var("UPDRAFT_MONGO_URI").unwrap_or_else(|_| {
        panic!("UPDRAFT_MONGO_URI is not set: start MongoDB (nx-27017) with `eval \"$(scripts/mongo start)\"` or run the whole suite with scripts/test")
    })
}

pub async fn mongo(database: &str) -> mongodb::Database {
    let uri = mongo_uri();
    let client = mongodb::Client::with_uri_str(format!(
        "{uri}/?serverSelectionTimeoutMS=5000&retryWrites=false"
    ))
    .await
    .unwrap_or_else(|e| panic!("bad UPDRAFT_MONGO_URI {uri}: {e}"));
    let db = client.database(database);
    db.list_collection_names().await.unwrap_or_else(|e| {
        panic!("MongoDB at {uri} does not answer ({e}): start it with `eval \"$(scripts/mongo start)\"`")
    });
    db
}

/// The `users` counts of every window document in `collection`, summed; an error (the
/// server restarting, say) for the caller's poll to retry.
pub async fn users_counted(collection: &mongodb::Collection<Document>) -> Result<i64, String> {
    Ok(try_all_documents(collection)
        .await?
        .iter()
        .map(|d| int(d, "users"))
        .sum())
}

/// Every document of `collection`; fails the test if the server does not answer.
pub async fn all_documents(collection: &mongodb::Collection<Document>) -> Vec<Document> {
    try_all_documents(collection)
        .await
        .unwrap_or_else(|e| panic!("reading {}: {e}", collection.name()))
}

pub async fn try_all_documents(
    collection: &mongodb::Collection<Document>,
) -> Result<Vec<Document>, String> {
    collection
        .find(Document::new())
        .await
        .map_err(|e| e.to_string())?
        .try_collect()
        .await
        .map_err(|e| e.to_string())
}

/// An integer field, whatever width the server stored it with.
pub fn int(document: &Document, key: &str) -> i64 {
    match document.get(key) {
        Some(mongodb::bson::Bson::Int64(n)) => *n,
        Some(mongodb::bson::Bson::Int32(n)) => i64::from(*n),
        Some(mongodb::bson::Bson::Double(n)) if n.fract() == 0.0 => *n as i64,
        other => panic!("{key} is {other:?} in {document}"),
    }
}

/// A number field as f64.
pub fn float(document: &Document, key: &str) -> f64 {
    match document.get(key) {
        Some(mongodb::bson::Bson::Double(n)) => *n,
        Some(mongodb::bson::Bson::Int64(n)) => *n as f64,
        Some(mongodb::bson::Bson::Int32(n)) => f64::from(*n),
        other => panic!("{key} is {other:?} in {document}"),
    }
}
