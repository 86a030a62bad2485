//! The payload-template and timestamp-source parsers: arbitrary text never
//! panics, and whatever parses re-parses from its description to the same
//! template.
#![no_main]

use hookgate::verify::{Template, TimeUnit, TimestampSource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = Template::parse(text) {
        assert_eq!(Template::parse(&t.describe()).as_ref(), Ok(&t), "{text:?}");
    }
    let _ = TimestampSource::parse(text);
    for unit in [TimeUnit::Seconds, TimeUnit::Milliseconds, TimeUnit::Rfc3339] {
        let _ = unit.parse_time(text);
    }
});
