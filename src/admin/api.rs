//! The spool API under `/admin/`:
//! - `GET /admin/deliveries?route=R&state=pending|delivered|dead&limit=N`
//! - `GET /admin/deliveries/{id}` (with attempt history and headers)
//! - `GET /admin/dead-letters?route=R&limit=N`
//! - `POST /admin/dead-letters/{id}/replay`
//! - `POST /admin/dead-letters/replay?route=R`
//! - `DELETE /admin/dead-letters/{id}`
//!
//! Adding an endpoint: one arm in [`spool`] (and its path in the
//! method-not-allowed arm), documented here and in the README's admin API
//! table, with a test in `tests/spool.rs`.

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use super::json_value;
use crate::server::json_error;
use crate::spool::{DeliveryState, DeliverySummary, ListFilter, Replay, Spool};
use crate::store::StoreError;

type Answer = Result<Response<Full<Bytes>>, StoreError>;

/// The query string of an `/admin/*` call.
pub(super) struct Query {
    pairs: Vec<(String, String)>,
    /// `limit`, 1..=1000, default 100.
    limit: usize,
}

impl Query {
    /// Parses the query; `None` when `limit` is out of range (answered
    /// 400 `bad_limit`).
    pub(super) fn parse(query: Option<&str>) -> Option<Query> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        let mut query = Query { pairs, limit: 100 };
        match query.param("limit").map(|l| l.parse::<usize>()) {
            None => {}
            Some(Ok(n)) if (1..=1000).contains(&n) => query.limit = n,
            Some(_) => return None,
        }
        Some(query)
    }

    fn param(&self, name: &str) -> Option<String> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// Answers a spool call; `segments` is the path after `/admin/`.
pub(super) async fn spool(
    spool: &Spool,
    method: &Method,
    segments: &[&str],
    query: &Query,
) -> Answer {
    let limit = query.limit;
    match (method, segments) {
        (&Method::GET, ["deliveries"]) => {
            let state = match query.param("state").map(|s| s.parse::<DeliveryState>()) {
                None => None,
                Some(Ok(state)) => Some(state),
                Some(Err(_)) => return Ok(json_error(StatusCode::BAD_REQUEST, "bad_state")),
            };
            Ok(items(spool.list(filter(query, state, limit)).await?))
        }
        (&Method::GET, ["deliveries", id]) => Ok(match spool.get(id).await? {
            Some(detail) => json_value(
                StatusCode::OK,
                serde_json::to_value(detail).unwrap_or_default(),
            ),
            None => json_error(StatusCode::NOT_FOUND, "not_found"),
        }),
        (&Method::GET, ["dead-letters"]) => {
            let dead = Some(DeliveryState::Dead);
            Ok(items(spool.list(filter(query, dead, limit)).await?))
        }
        (&Method::POST, ["dead-letters", "replay"]) => replay_route(spool, query).await,
        (&Method::POST, ["dead-letters", id, "replay"]) => {
            let moved = spool.replay(Replay::One(id.to_string())).await?;
            Ok(if moved.is_empty() {
                json_error(StatusCode::NOT_FOUND, "not_found")
            } else {
                json_value(StatusCode::OK, serde_json::json!({ "replayed": 1 }))
            })
        }
        (&Method::DELETE, ["dead-letters", id]) => Ok(if spool.drop_dead(id).await? {
            json_value(StatusCode::OK, serde_json::json!({ "dropped": 1 }))
        } else {
            json_error(StatusCode::NOT_FOUND, "not_found")
        }),
        (
            _,
            ["deliveries"]
            | ["deliveries", _]
            | ["dead-letters"]
            | ["dead-letters", "replay"]
            | ["dead-letters", _, "replay"]
            | ["dead-letters", _],
        ) => Ok(json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        )),
        _ => Ok(json_error(StatusCode::NOT_FOUND, "not_found")),
    }
}

/// `?route=R&destination=D`: the listing's filters.
fn filter(query: &Query, state: Option<DeliveryState>, limit: usize) -> ListFilter {
    ListFilter {
        route: query.param("route"),
        destination: query.param("destination"),
        state,
        limit,
    }
}

/// `POST /admin/dead-letters/replay?route=R[&destination=D]`: every dead
/// letter of `R` (at `D`).
async fn replay_route(spool: &Spool, query: &Query) -> Answer {
    let Some(route) = query.param("route") else {
        return Ok(json_error(StatusCode::BAD_REQUEST, "route_required"));
    };
    let which = match query.param("destination") {
        Some(destination) => Replay::Destination { route, destination },
        None => Replay::Route(route),
    };
    let moved = spool.replay(which).await?;
    let n: i64 = moved.iter().map(|(_, n)| n).sum();
    Ok(json_value(
        StatusCode::OK,
        serde_json::json!({ "replayed": n }),
    ))
}

fn items(items: Vec<DeliverySummary>) -> Response<Full<Bytes>> {
    json_value(StatusCode::OK, serde_json::json!({ "items": items }))
}
