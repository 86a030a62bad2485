//! `timestamp.from: json:/…` reads a body that is not yet authenticated:
//! the timestamp must be found by a streaming scan, never by parsing the
//! sender's JSON into a document tree (whose allocations an unauthenticated
//! sender would choose). This binary counts the bytes its thread allocates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use hookgate::verify::{TimeUnit, TimestampSource, TimestampSpec};
use http::{HeaderMap, HeaderName};

struct CountingAllocator;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the count
// is a const-initialised thread local, which never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.with(|n| n.set(n.get() + layout.size()));
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn json_timestamps_are_found_without_building_the_document() {
    let items: Vec<String> = (0..20_000)
        .map(|i| format!(r#"{{"id":"item-{i}","tags":["a","b"],"n":{i}}}"#))
        .collect();
    let body = format!(
        r#"{{"items":[{}],"meta":{{"sent_at":1700000000}}}}"#,
        items.join(",")
    );
    let spec = TimestampSpec {
        source: TimestampSource::parse("json:/meta/sent_at").unwrap(),
        unit: TimeUnit::Seconds,
        tolerance: Duration::from_secs(300),
    };
    let (headers, signature) = (HeaderMap::new(), HeaderName::from_static("x-sig"));

    let before = ALLOCATED.with(Cell::get);
    let found = spec.extract(&headers, body.as_bytes(), (&signature, None));
    let allocated = ALLOCATED.with(Cell::get) - before;

    assert_eq!(found.as_deref(), Ok("1700000000"));
    // A document tree of this body takes megabytes; the scan keeps only
    // the value it returns.
    assert!(
        allocated < 1024,
        "{allocated} bytes allocated to find a timestamp in a {} byte body",
        body.len()
    );
}
