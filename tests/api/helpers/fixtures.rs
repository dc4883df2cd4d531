//! The vendor sample payloads in `tests/fixtures/`.

use std::path::PathBuf;

/// `(file name, body bytes)` of every fixture, sorted by name.
pub fn all() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert_eq!(
        out.len(),
        8,
        "expected the eight vendor fixtures in {}",
        dir.display()
    );
    out
}
