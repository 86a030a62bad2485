//! A Redis stream. Each delivery is one `XADD` (with `MAXLEN ~ maxlen`
//! trimming when set) of the fields `body` (the exact bytes), `headers`
//! (a JSON object of the forwarded headers; a name sent several times has
//! its values joined with `, `) and one field per hookgate value
//! (`hookgate-delivery-id`, `hookgate-route`, `hookgate-attempt`,
//! `hookgate-event-type` when known). It is delivered once Redis answers
//! with the entry id.
//!
//! A republish of a delivery already appended (the process died between
//! the `XADD` and recording it) is skipped: one script appends and
//! remembers the delivery id under `<stream>:hookgate-ids:<id>` for
//! [`REMEMBER_IDS_FOR`], atomically.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::{bounded, Answer, DeliverError, DeliverFuture, Destination, Message};

/// How long a delivery id is remembered to skip a republish.
pub const REMEMBER_IDS_FOR: Duration = Duration::from_secs(24 * 3600);

/// KEYS: stream, id marker. ARGV: marker ttl ms, maxlen (0: none), then
/// field/value pairs. Returns the new entry id, or the marker's value
/// (the first entry id) when this delivery was appended already.
const APPEND: &str = r"
local seen = redis.call('GET', KEYS[2])
if seen then return seen end
local args = {KEYS[1]}
if tonumber(ARGV[2]) > 0 then
  table.insert(args, 'MAXLEN'); table.insert(args, '~'); table.insert(args, ARGV[2])
end
table.insert(args, '*')
for i = 3, #ARGV do table.insert(args, ARGV[i]) end
local id = redis.call('XADD', unpack(args))
redis.call('SET', KEYS[2], id, 'PX', ARGV[1])
return id";

pub struct RedisStreamDestination {
    conn: ConnectionManager,
    stream: String,
    maxlen: u64,
    timeout: Duration,
    target: String,
    script: Script,
}

impl RedisStreamDestination {
    /// Prepares a connection to `url`; it is made on first use.
    pub fn new(
        url: &str,
        stream: &str,
        maxlen: u64,
        timeout: Duration,
    ) -> Result<RedisStreamDestination, DeliverError> {
        let target = format!("{} stream {stream}", super::redacted(url));
        let failed = |what: &str, e: redis::RedisError| DeliverError::Failed {
            target: target.clone(),
            message: format!("{what}: {:?}", e.kind()),
        };
        let client = redis::Client::open(url).map_err(|e| failed("not a Redis URL", e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| failed("cannot connect", e))?;
        Ok(RedisStreamDestination {
            conn,
            stream: stream.to_string(),
            maxlen,
            timeout,
            target,
            script: Script::new(APPEND),
        })
    }

    async fn append(&self, message: &Message) -> Result<Answer, DeliverError> {
        let mut fields: Vec<(String, Vec<u8>)> = vec![
            ("body".into(), message.body.to_vec()),
            ("headers".into(), headers_json(message).into_bytes()),
        ];
        for (name, value) in message.text_headers() {
            if name.starts_with("hookgate-") {
                fields.push((name, value.into_bytes()));
            }
        }
        let marker = format!("{}:hookgate-ids:{}", self.stream, message.delivery_id);
        let mut invocation = self.script.key(&self.stream);
        invocation
            .key(marker)
            .arg(REMEMBER_IDS_FOR.as_millis() as u64)
            .arg(self.maxlen);
        for (name, value) in fields {
            invocation.arg(name).arg(value);
        }
        let mut conn = self.conn.clone();
        invocation
            .invoke_async::<String>(&mut conn)
            .await
            .map_err(|e| DeliverError::Failed {
                target: self.target.clone(),
                message: format!("XADD: {e}"),
            })?;
        Ok(Answer::Accepted)
    }
}

/// The forwarded headers (without hookgate's own, which are fields of
/// their own) as a JSON object.
fn headers_json(message: &Message) -> String {
    let mut object = serde_json::Map::new();
    for (name, value) in message.text_headers() {
        if name.starts_with("hookgate-") {
            continue;
        }
        match object.get_mut(&name) {
            Some(serde_json::Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(&value);
            }
            _ => {
                object.insert(name, serde_json::Value::String(value));
            }
        }
    }
    serde_json::Value::Object(object).to_string()
}

impl Destination for RedisStreamDestination {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn target(&self) -> &str {
        &self.target
    }

    fn deliver<'a>(&'a self, message: &'a Message) -> DeliverFuture<'a> {
        Box::pin(bounded(&self.target, self.timeout, self.append(message)))
    }
}
