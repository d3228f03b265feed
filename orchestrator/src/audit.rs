//! Every write kept in the audit log (the store's `audit_log`) and in the tracing log, from
//! the web UI, the API and the CLI alike.

use ui::views::Actor;

use crate::store::{AuditEntry, Store};

/// Who runs a CLI command: the OS user, from `cli`.
pub fn cli_actor() -> Actor {
    let username = ["USER", "LOGNAME"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "cli".to_owned());
    Actor::new(username, Some("cli".to_owned()))
}

/// An entry for `event` by `actor`.
pub fn entry(actor: &Actor, event: &str) -> AuditEntry {
    AuditEntry::new(&actor.username, actor.source.as_deref(), event)
}

/// Keeps `entry`. The action it records has happened: a store that cannot keep it is logged
/// as an error, not answered as the action's failure.
pub async fn record(store: &Store, entry: AuditEntry) {
    tracing::info!(
        event = %entry.event,
        owner = %entry.owner,
        source = entry.source.as_deref().unwrap_or(""),
        dag_id = entry.dag_id.as_deref().unwrap_or(""),
        run_id = entry.run_id.as_deref().unwrap_or(""),
        task_id = entry.task_id.as_deref().unwrap_or(""),
        detail = %entry.detail,
        "Audit"
    );
    if let Err(error) = store.record_audit(&entry).await {
        tracing::error!(%error, event = %entry.event, owner = %entry.owner, "Cannot keep an audit log entry");
    }
}
