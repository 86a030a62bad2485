//! `hookgate deliveries …` and `hookgate dead-letters …`: thin clients of
//! the admin API (`/admin/*` on the admin listener), printing its JSON.

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Where the admin API is and how to authenticate.
#[derive(Args)]
pub struct AdminArgs {
    /// The admin listener's base URL.
    #[arg(
        long = "admin",
        env = "HOOKGATE_ADMIN_URL",
        default_value = "http://127.0.0.1:9090"
    )]
    url: String,
    /// The `admin.token`, when the gateway sets one.
    #[arg(long, env = "HOOKGATE_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
pub enum Deliveries {
    /// List deliveries, newest first.
    List {
        #[arg(long)]
        route: Option<String>,
        /// One destination of the route (`upstream` for `upstream:`).
        #[arg(long)]
        destination: Option<String>,
        /// pending, delivered or dead.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show one delivery with its attempt history and headers.
    Show {
        id: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Subcommand)]
pub enum DeadLetters {
    /// List dead letters, newest first.
    List {
        #[arg(long)]
        route: Option<String>,
        #[arg(long)]
        destination: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Send dead letters back to pending with their attempts reset: one by
    /// id, or every one of a route with --route (at one destination with
    /// --destination).
    Replay {
        #[arg(required_unless_present = "route", conflicts_with = "route")]
        id: Option<String>,
        #[arg(long)]
        route: Option<String>,
        #[arg(long, requires = "route")]
        destination: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Delete one dead letter for good.
    Drop {
        id: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}

fn segment(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

pub fn deliveries(command: Deliveries) -> anyhow::Result<String> {
    match command {
        Deliveries::List {
            route,
            destination,
            state,
            limit,
            admin,
        } => call(
            &admin,
            Method::GET,
            &format!(
                "/admin/deliveries{}",
                query(&[
                    ("route", route),
                    ("destination", destination),
                    ("state", state),
                    ("limit", Some(limit.to_string()))
                ])
            ),
        ),
        Deliveries::Show { id, admin } => call(
            &admin,
            Method::GET,
            &format!("/admin/deliveries/{}", segment(&id)),
        ),
    }
}

pub fn dead_letters(command: DeadLetters) -> anyhow::Result<String> {
    match command {
        DeadLetters::List {
            route,
            destination,
            limit,
            admin,
        } => call(
            &admin,
            Method::GET,
            &format!(
                "/admin/dead-letters{}",
                query(&[
                    ("route", route),
                    ("destination", destination),
                    ("limit", Some(limit.to_string()))
                ])
            ),
        ),
        DeadLetters::Replay {
            id: Some(id),
            admin,
            ..
        } => call(
            &admin,
            Method::POST,
            &format!("/admin/dead-letters/{}/replay", segment(&id)),
        ),
        DeadLetters::Replay {
            id: None,
            route,
            destination,
            admin,
        } => call(
            &admin,
            Method::POST,
            &format!(
                "/admin/dead-letters/replay{}",
                query(&[("route", route), ("destination", destination)])
            ),
        ),
        DeadLetters::Drop { id, admin } => call(
            &admin,
            Method::DELETE,
            &format!("/admin/dead-letters/{}", segment(&id)),
        ),
    }
}

/// One admin API call; the pretty-printed JSON answer, or an error with
/// the API's error code.
fn call(admin: &AdminArgs, method: Method, path: &str) -> anyhow::Result<String> {
    let url = format!("{}{path}", admin.url.trim_end_matches('/'));
    let mut request = Request::builder().method(method).uri(&url);
    if let Some(token) = &admin.token {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(Bytes::new()))
        .with_context(|| format!("invalid admin URL {:?}", admin.url))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, body) = runtime.block_on(async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let response =
            tokio::time::timeout(std::time::Duration::from_secs(30), client.request(request))
                .await
                .context("the admin API did not answer within 30s")?
                .with_context(|| format!("cannot reach the admin API at {}", admin.url))?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    })?;
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if !status.is_success() {
        let code = json["error"].as_str().unwrap_or("unknown");
        bail!("the admin API answered {status}: {code}");
    }
    Ok(format!("{}\n", serde_json::to_string_pretty(&json)?))
}
