//! The service's log lines, captured in-process. One global subscriber (installed once per
//! test binary) writes each JSON line to the buffer of the thread that logged it, when that
//! thread is capturing; a `#[tokio::test]` (current-thread runtime, the service's tasks on the
//! same thread) so sees its own service's lines and no other test's.
//!
//! Not `tracing::subscriber::set_default` per test: tracing's global level and callsite
//! interest are recomputed as scoped subscribers come and go on other threads, and a test could
//! miss a line while another test's subscriber was being dropped.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};

use serde_json::Value;

/// Captured lines.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURING: RefCell<Option<Logs>> = const { RefCell::new(None) };
}

/// Stops capturing on this thread when dropped.
pub struct CaptureGuard(());

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURING.with(|c| *c.borrow_mut() = None);
    }
}

/// Captures this thread's log lines until the guard is dropped.
pub fn capture() -> (CaptureGuard, Logs) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(|| ThreadWriter)
            .finish();
        // A test binary that set its own global subscriber keeps it.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
    let logs = Logs::default();
    CAPTURING.with(|c| *c.borrow_mut() = Some(logs.clone()));
    (CaptureGuard(()), logs)
}

impl Logs {
    /// Every line so far, parsed.
    pub fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The lines whose message is `message`, as their `fields` objects.
    pub fn with_message(&self, message: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l["fields"]["message"] == message)
            .map(|l| l["fields"].clone())
            .collect()
    }
}

/// Writes to the current thread's capture buffer, or nowhere.
struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURING.with(|c| {
            if let Some(logs) = &*c.borrow() {
                logs.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
