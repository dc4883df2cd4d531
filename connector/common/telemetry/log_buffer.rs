//! Log lines gathered in memory and written out a buffer at a time: when [`FLUSH_AT`] bytes have
//! gathered, every [`FLUSH_EVERY`] (a thread of its own), at shutdown, and before a panic's
//! message.
//!
//! Why: at `info` a webhook writes one JSON line, and writing each line to stderr as it comes
//! is a `write(2)` on the request's worker thread for every webhook — measured A/B, logging at
//! `info` cost about 20 µs a webhook that way (docs/performance.md, issue 26). Gathered, the
//! same lines cost one system call per ~100 of them. The price: a line reaches stderr up to
//! [`FLUSH_EVERY`] late, and a process killed with SIGKILL loses at most that much.
//!
//! Not `tracing-appender`'s non-blocking writer: it hands each line to its thread through a
//! channel, which wakes that thread (a futex call and a context switch) for nearly every line at
//! these rates, and it writes each line with its own call unless wrapped again; this is one
//! mutex and a `Vec`.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Gathered bytes that trigger a write on the logging thread itself.
pub(crate) const FLUSH_AT: usize = 32 * 1024;

/// The longest a line waits in the buffer.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(100);

struct Shared {
    /// Lines not yet written, and where they go.
    state: Mutex<State>,
    stop: AtomicBool,
}

struct State {
    pending: Vec<u8>,
    out: Box<dyn Write + Send>,
}

impl State {
    fn flush(&mut self) {
        if !self.pending.is_empty() {
            // A log line that cannot be written has nowhere else to go.
            let _ = self.out.write_all(&self.pending);
            let _ = self.out.flush();
            self.pending.clear();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves at worst a partly gathered line.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The buffer: a `MakeWriter` for `tracing-subscriber`, cheap to clone.
#[derive(Clone)]
pub(crate) struct LogBuffer {
    shared: Arc<Shared>,
}

/// Stops the flushing thread and writes what is left; also on drop.
pub struct Flusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LogBuffer {
    /// A buffer in front of `out`, its flushing thread, and a panic hook that writes the
    /// gathered lines before the panic's message.
    pub(crate) fn start(out: Box<dyn Write + Send>) -> (Self, Flusher) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: Vec::with_capacity(FLUSH_AT + 1024),
                out,
            }),
            stop: AtomicBool::new(false),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("log-flush".into())
                .spawn(move || {
                    while !shared.stop.load(Ordering::Acquire) {
                        std::thread::park_timeout(FLUSH_EVERY);
                        shared.lock().flush();
                    }
                })
        };
        // Without the thread nothing would write a short line for a long time: each line goes
        // out as it comes instead, as after shutdown.
        let thread = thread
            .map_err(|error| {
                eprintln!(
                    "riskos-connector: no log flushing thread ({error}): writing each line as it comes"
                );
                shared.stop.store(true, Ordering::Release);
            })
            .ok();
        let buffer = Self { shared };
        buffer.flush_before_panics();
        let flusher = Flusher {
            shared: buffer.shared.clone(),
            thread,
        };
        (buffer, flusher)
    }

    /// Writes what has gathered now.
    #[cfg(test)]
    pub(crate) fn flush(&self) {
        self.shared.lock().flush();
    }

    fn flush_before_panics(&self) {
        let weak = Arc::downgrade(&self.shared);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // `try_lock`: the panic may be inside a write that holds the lock.
            if let Some(shared) = weak.upgrade() {
                if let Ok(mut state) = shared.state.try_lock() {
                    state.flush();
                }
            }
            previous(info);
        }));
    }
}

impl Flusher {
    /// Stops the thread and writes what is left.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
        self.shared.lock().flush();
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One event's writer: `tracing-subscriber` formats a line and writes it with one `write_all`.
pub(crate) struct LineWriter<'a> {
    shared: &'a Shared,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut state = self.shared.lock();
        state.pending.extend_from_slice(bytes);
        // Once the flusher has finished, nothing would write a line later: each goes now.
        if state.pending.len() >= FLUSH_AT || self.shared.stop.load(Ordering::Acquire) {
            state.flush();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter as _;

    /// A `Write` whose bytes, and how many writes carried them, the test can read.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let mut sink = self.0.lock().unwrap();
            sink.0.extend_from_slice(bytes);
            sink.1 += 1;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn written(&self) -> (Vec<u8>, usize) {
            self.0.lock().unwrap().clone()
        }
    }

    #[test]
    fn lines_are_written_a_buffer_at_a_time_in_order() {
        let sink = Sink::default();
        let (buffer, flusher) = LogBuffer::start(Box::new(sink.clone()));
        let line = |i: usize| format!("{{\"n\":{i:05}}}\n");
        for i in 0..10 {
            buffer.make_writer().write_all(line(i).as_bytes()).unwrap();
        }
        // Ten short lines have not filled the buffer: nothing went out line by line.
        assert_eq!(sink.written().1, 0, "a line was written on its own");
        buffer.flush();
        let (bytes, writes) = sink.written();
        assert_eq!(writes, 1);
        let expected: String = (0..10).map(line).collect();
        assert_eq!(String::from_utf8(bytes).unwrap(), expected);

        // A full buffer goes out from the logging thread itself, in one write.
        let lines = FLUSH_AT / line(0).len() + 1;
        for i in 0..lines {
            buffer.make_writer().write_all(line(i).as_bytes()).unwrap();
        }
        assert_eq!(sink.written().1, 2, "the full buffer went out in one write");

        buffer.make_writer().write_all(b"last\n").unwrap();
        flusher.finish();
        let (bytes, _) = sink.written();
        assert!(bytes.ends_with(b"last\n"), "finishing writes what is left");

        // After shutdown (an error logged on the way out) each line goes at once.
        buffer.make_writer().write_all(b"after\n").unwrap();
        assert!(sink.written().0.ends_with(b"after\n"));
    }

    #[test]
    fn dropping_the_flusher_writes_what_is_left() {
        let sink = Sink::default();
        let (buffer, flusher) = LogBuffer::start(Box::new(sink.clone()));
        buffer.make_writer().write_all(b"one line\n").unwrap();
        drop(flusher);
        assert_eq!(sink.written().0, b"one line\n");
    }
}
