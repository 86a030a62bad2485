//! What the console shows of the last hour: per route, a ring of 60
//! one-minute buckets (verified, rejected by reason, duplicate, delivered,
//! failed deliveries), the time of the last request, and the last rejected
//! requests (time, sender address, reason, header names).
//!
//! Fed from [`crate::telemetry::RouteMetrics`], where the request path
//! already counts each of these: one short lock per event, no allocation
//! except for a rejection's header names. It must never hold a header
//! value, a body or anything else a sender sent beyond header names.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use http::HeaderMap;

use crate::store::now_ms;
use crate::verify::VerifyError;

/// How many rejected requests a route keeps.
pub const REJECTIONS_KEPT: usize = 20;
/// How many header names one rejection keeps.
const HEADER_NAMES_KEPT: usize = 40;
const MINUTES: usize = 60;

/// Every route's activity, by route name. Routes keep their buffers across
/// reloads (each generation's metrics handles find the same one).
#[derive(Default)]
pub struct Activity {
    routes: RwLock<HashMap<String, Arc<RouteActivity>>>,
}

impl Activity {
    /// The route's buffers, made on first use.
    pub fn route(&self, name: &str) -> Arc<RouteActivity> {
        if let Some(found) = self.routes.read().unwrap().get(name) {
            return found.clone();
        }
        self.routes
            .write()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .clone()
    }
}

/// What happened, for the per-minute counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A request that passed verification.
    Verified,
    /// A request refused by verification.
    Rejected(VerifyError),
    /// A copy of an event already accepted.
    Duplicate,
    /// An upstream accepted the event (sync: 2xx relayed; async: delivered).
    Delivered,
    /// A delivery attempt that did not succeed.
    DeliveryFailed,
}

/// One minute's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Minute {
    /// Unix time / 60 of this minute.
    pub minute: i64,
    pub verified: u32,
    /// By reason, in [`VerifyError::ALL`] order.
    pub rejected: [u32; VerifyError::ALL.len()],
    pub duplicate: u32,
    pub delivered: u32,
    pub delivery_failed: u32,
}

impl Minute {
    pub fn rejected_total(&self) -> u32 {
        self.rejected.iter().sum()
    }
}

/// One rejected request: never a header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Unix ms.
    pub at: i64,
    pub peer: SocketAddr,
    pub reason: VerifyError,
    pub header_names: Vec<String>,
}

#[derive(Default)]
pub struct RouteActivity {
    inner: Mutex<Inner>,
}

struct Inner {
    minutes: [Minute; MINUTES],
    /// Unix ms of the last request of any kind.
    last_request: Option<i64>,
    rejections: VecDeque<Rejection>,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            minutes: [Minute::default(); MINUTES],
            last_request: None,
            rejections: VecDeque::with_capacity(REJECTIONS_KEPT),
        }
    }
}

impl RouteActivity {
    /// Counts one event in the current minute.
    pub fn count(&self, seen: Seen) {
        self.count_at(seen, now_ms());
    }

    fn count_at(&self, seen: Seen, now: i64) {
        let minute = now.div_euclid(60_000);
        let mut inner = self.inner.lock().unwrap();
        let slot = &mut inner.minutes[minute.rem_euclid(MINUTES as i64) as usize];
        if slot.minute != minute {
            *slot = Minute {
                minute,
                ..Minute::default()
            };
        }
        match seen {
            Seen::Verified => slot.verified += 1,
            Seen::Rejected(e) => {
                let i = VerifyError::ALL.iter().position(|x| *x == e).unwrap_or(0);
                slot.rejected[i] += 1;
            }
            Seen::Duplicate => slot.duplicate += 1,
            Seen::Delivered => slot.delivered += 1,
            Seen::DeliveryFailed => slot.delivery_failed += 1,
        }
    }

    /// Notes that a request arrived (whatever became of it).
    pub fn request(&self) {
        self.inner.lock().unwrap().last_request = Some(now_ms());
    }

    /// Keeps a rejected request's time, sender and header names.
    pub fn reject(&self, reason: VerifyError, peer: SocketAddr, headers: &HeaderMap) {
        let mut header_names: Vec<String> = Vec::new();
        for name in headers.keys().take(HEADER_NAMES_KEPT) {
            header_names.push(name.as_str().to_string());
        }
        let rejection = Rejection {
            at: now_ms(),
            peer,
            reason,
            header_names,
        };
        let mut inner = self.inner.lock().unwrap();
        if inner.rejections.len() == REJECTIONS_KEPT {
            inner.rejections.pop_front();
        }
        inner.rejections.push_back(rejection);
    }

    /// The last hour, one entry per minute, oldest first, ending with the
    /// current minute (minutes without events are zeros).
    pub fn last_hour(&self) -> Vec<Minute> {
        self.last_hour_at(now_ms())
    }

    fn last_hour_at(&self, now: i64) -> Vec<Minute> {
        let current = now.div_euclid(60_000);
        let inner = self.inner.lock().unwrap();
        (current - MINUTES as i64 + 1..=current)
            .map(|minute| {
                let slot = inner.minutes[minute.rem_euclid(MINUTES as i64) as usize];
                if slot.minute == minute {
                    slot
                } else {
                    Minute {
                        minute,
                        ..Minute::default()
                    }
                }
            })
            .collect()
    }

    /// Unix ms of the last request, if any since start-up.
    pub fn last_request(&self) -> Option<i64> {
        self.inner.lock().unwrap().last_request
    }

    /// The kept rejections, newest first.
    pub fn rejections(&self) -> Vec<Rejection> {
        self.inner
            .lock()
            .unwrap()
            .rejections
            .iter()
            .rev()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_minute_and_old_minutes_fall_out() {
        let a = RouteActivity::default();
        let t0 = 1_000 * 60_000;
        a.count_at(Seen::Verified, t0);
        a.count_at(Seen::Verified, t0 + 59_999);
        a.count_at(Seen::Rejected(VerifyError::BadSignature), t0 + 60_000);
        a.count_at(Seen::Duplicate, t0 + 60_000);
        a.count_at(Seen::Delivered, t0 + 60_000);
        let hour = a.last_hour_at(t0 + 60_000);
        assert_eq!(hour.len(), 60);
        assert_eq!(hour[58].minute, 1000);
        assert_eq!(hour[58].verified, 2);
        let last = hour[59];
        assert_eq!(last.verified, 0);
        assert_eq!(last.rejected_total(), 1);
        assert_eq!(last.rejected[2], 1, "bad_signature is the third reason");
        assert_eq!((last.duplicate, last.delivered), (1, 1));
        // An hour later the slot is reused, not added to.
        a.count_at(Seen::Verified, t0 + 60 * 60_000);
        let hour = a.last_hour_at(t0 + 60 * 60_000);
        assert_eq!(hour[59].verified, 1);
        assert!(hour[..59]
            .iter()
            .all(|m| m.verified == 0 || m.minute > 1000));
        assert_eq!(hour.iter().map(|m| m.verified).sum::<u32>(), 1);
    }

    #[test]
    fn rejections_keep_header_names_only_and_the_last_twenty() {
        let a = RouteActivity::default();
        let mut headers = HeaderMap::new();
        headers.insert("x-signature", "sha1=deadbeefvalue".parse().unwrap());
        let peer: SocketAddr = "192.0.2.7:4000".parse().unwrap();
        for _ in 0..25 {
            a.reject(VerifyError::BadSignature, peer, &headers);
        }
        let kept = a.rejections();
        assert_eq!(kept.len(), REJECTIONS_KEPT);
        assert_eq!(kept[0].header_names, ["x-signature"]);
        assert!(!format!("{kept:?}").contains("deadbeef"));
    }

    #[test]
    fn routes_share_their_buffers_by_name() {
        let all = Activity::default();
        all.route("r").count(Seen::Verified);
        let total = |name: &str| {
            all.route(name)
                .last_hour()
                .iter()
                .map(|m| m.verified)
                .sum::<u32>()
        };
        assert_eq!(total("r"), 1);
        assert_eq!(total("other"), 0);
    }
}
