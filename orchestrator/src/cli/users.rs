use std::process::ExitCode;

use clap::Subcommand;
use orchestrator::{
    audit,
    users::{self, Role},
};

use super::{GlobalArgs, table};

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Add a user (the password is read from UPDRAFT_PASSWORD or asked on stdin)
    Add {
        username: String,
        /// viewer (reads), op (also triggers, pauses, clears, marks, stops) or admin (also
        /// the audit log)
        #[arg(long, default_value = "viewer")]
        role: Role,
    },
    /// Change a user's password (from UPDRAFT_PASSWORD or stdin); their UI sessions end
    SetPassword { username: String },
    /// Give a user another role (it counts from their next request)
    SetRole {
        username: String,
        #[arg(long)]
        role: Role,
    },
    /// List the users
    List,
    /// Delete a user (their API tokens are revoked)
    Delete { username: String },
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Create an API token for a user; it is printed once
    Create {
        #[arg(long)]
        user: String,
        /// What the token is for
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List tokens (not their secrets)
    List,
    /// Revoke a token by its id
    Revoke { token_id: String },
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("UPDRAFT_PASSWORD") {
        return Ok(password);
    }
    eprint!("Password: ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

pub async fn users(global: &GlobalArgs, command: UsersCommand) -> anyhow::Result<ExitCode> {
    let store = global.store().await?;
    let actor = audit::cli_actor();
    match command {
        UsersCommand::Add { username, role } => {
            let password = read_password()?;
            users::add_user(&store, &username, &password, role).await?;
            let detail = serde_json::json!({"user": username, "role": role.as_str()});
            let entry = audit::entry(&actor, "user_add").with_detail(detail);
            audit::record(&store, entry).await;
            println!("Added user {username} ({role})");
        }
        UsersCommand::SetPassword { username } => {
            let password = read_password()?;
            users::set_password(&store, &username, &password).await?;
            let detail = serde_json::json!({"user": username});
            let entry = audit::entry(&actor, "user_set_password").with_detail(detail);
            audit::record(&store, entry).await;
            println!(
                "Changed the password of {username}: their UI sessions end at their next request"
            );
        }
        UsersCommand::SetRole { username, role } => {
            users::set_role(&store, &username, role).await?;
            let detail = serde_json::json!({"user": username, "role": role.as_str()});
            let entry = audit::entry(&actor, "user_set_role").with_detail(detail);
            audit::record(&store, entry).await;
            println!("{username} is now {role}");
        }
        UsersCommand::List => {
            let rows: Vec<Vec<String>> = store
                .users()
                .await?
                .into_iter()
                .map(|u| vec![u.username, u.role, table::time(Some(u.created_at))])
                .collect();
            table::print(&["username", "role", "created"], &rows);
        }
        UsersCommand::Delete { username } => {
            if !store.delete_user(&username).await? {
                anyhow::bail!("no user {username:?}: see `orchestrator users list`");
            }
            let detail = serde_json::json!({"user": username});
            let entry = audit::entry(&actor, "user_delete").with_detail(detail);
            audit::record(&store, entry).await;
            println!("Deleted user {username} and revoked their tokens");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn tokens(global: &GlobalArgs, command: TokensCommand) -> anyhow::Result<ExitCode> {
    let store = global.store().await?;
    let actor = audit::cli_actor();
    match command {
        TokensCommand::Create { user, description } => {
            let (id, token) = users::create_token(&store, &user, &description).await?;
            let detail =
                serde_json::json!({"token_id": id, "user": user, "description": description});
            let entry = audit::entry(&actor, "token_create").with_detail(detail);
            audit::record(&store, entry).await;
            eprintln!(
                "Token {id} for {user} (shown once; send it as `Authorization: Bearer <token>`):"
            );
            println!("{token}");
        }
        TokensCommand::List => {
            let rows: Vec<Vec<String>> = store
                .tokens()
                .await?
                .into_iter()
                .map(|t| {
                    vec![
                        t.token_id,
                        t.username,
                        t.description,
                        table::time(Some(t.created_at)),
                        table::time(t.revoked_at),
                    ]
                })
                .collect();
            table::print(
                &["token_id", "user", "description", "created", "revoked"],
                &rows,
            );
        }
        TokensCommand::Revoke { token_id } => {
            if !store.revoke_token(&token_id).await? {
                anyhow::bail!("no live token {token_id:?}: see `orchestrator tokens list`");
            }
            let detail = serde_json::json!({"token_id": token_id});
            let entry = audit::entry(&actor, "token_revoke").with_detail(detail);
            audit::record(&store, entry).await;
            println!("Revoked token {token_id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
