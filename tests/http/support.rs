//! What the tests moved here from `tests/api` share beyond `helpers`: the vendor fixtures, the
//! log capture (the same files `tests/api` uses), a request with a given content type and
//! length, and a copy of the shipped schemas a test may edit.

use std::path::Path;

use axum::body::Body;
use axum::http::Request;

use crate::helpers::{Connector, Reply};

#[path = "../api/helpers/fixtures.rs"]
pub mod fixtures;
#[path = "../api/helpers/logs.rs"]
pub mod logs;

/// How a test body is framed on the wire.
pub enum Framing {
    /// With `Content-Length`, as a client that knows the size sends it.
    Sized(Vec<u8>),
    /// Chunked, no `Content-Length`: `chunks` pieces of `size` spaces.
    Streamed { chunks: usize, size: usize },
}

/// A POST to the webhook path with `content_type` (none when `None`) and `body`.
pub async fn post_as(connector: &Connector, content_type: Option<&str>, body: Framing) -> Reply {
    let mut request = Request::post(&connector.config.endpoints[0].path);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let body = match body {
        Framing::Sized(bytes) => {
            request = request.header("content-length", bytes.len());
            Body::from(bytes)
        }
        Framing::Streamed { chunks, size } => Body::from_stream(futures::stream::iter(
            (0..chunks).map(move |_| Ok::<_, std::io::Error>(vec![b' '; size])),
        )),
    };
    connector.send(request.body(body).unwrap()).await
}

/// A copy of the shipped schemas that a test may edit.
pub fn schema_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    for entry in std::fs::read_dir(shipped).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}
