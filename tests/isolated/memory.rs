//! Memory stays where it was when nobody scrapes `/metrics` (issue 11): the recorder used to
//! keep every histogram sample until a scrape, ~38 bytes a request.
//!
//! In `tests/isolated`, holding the process to itself, because it counts the live bytes of the
//! process's Rust heap with the binary's counting global allocator (librdkafka's C heap is not counted; its queue is bounded by
//! its own settings). Count-based: it reads the heap every 10,000 requests, whatever the time
//! they took, and requires the second half of the run to be flat.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use futures::StreamExt as _;
use serde_json::{json, Value};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Posts `count` distinct webhooks, 32 at a time, each answered 200.
async fn post_distinct(app: &support::TestApp, template: &Value, from: usize, count: usize) {
    futures::stream::iter(from..from + count)
        .map(|n| {
            let mut body = template.clone();
            body["event_id"] = json!(format!("memory-{n}"));
            async move {
                let response = app.post_webhook(body.to_string()).await;
                assert_eq!(response.status(), 200);
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_without_a_scrape_leave_the_heap_where_it_was() {
    const WARM_UP: usize = 3_000;
    const STEP: usize = 10_000;
    const STEPS: usize = 8;
    // Nothing else allocates meanwhile: the heap counted is this test's.
    let _alone = crate::ALONE.lock().await;
    let stack = support::Stack::start_with(|c| {
        // Off: a duplicate cache grows by design until its own bound.
        c.delivery.dedup.max_entries = 0;
        c.endpoints[0].rate_limit_per_ip = 0;
    })
    .await;
    let (_, fixture) = support::fixtures::all()
        .into_iter()
        .find(|(n, _)| n == "riskos.case_closure.match.json")
        .unwrap();
    let template: Value = serde_json::from_slice(&fixture).unwrap();

    post_distinct(&stack.app, &template, 0, WARM_UP).await;
    let mut heap = vec![LIVE.load(Ordering::Relaxed)];
    for step in 0..STEPS {
        post_distinct(&stack.app, &template, WARM_UP + step * STEP, STEP).await;
        heap.push(LIVE.load(Ordering::Relaxed));
    }
    println!("heap after {WARM_UP} requests, then every {STEP} more: {heap:?}");
    // The first half lets pools and tables reach their working size; the second half must be
    // flat. Before the fix the recorder kept ~33 B a request here: 1.3 MB over the window.
    let window = (STEPS / 2) * STEP;
    let grown = heap[STEPS] - heap[STEPS / 2];
    println!(
        "{:.2} B a request over the last {window} requests",
        grown as f64 / window as f64
    );
    assert!(
        grown < (8 * window) as isize,
        "the heap grew by {grown} B over {window} requests with no scrape: {heap:?}"
    );
}
