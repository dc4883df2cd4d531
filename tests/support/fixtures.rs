//! The vendor sample payloads in `tests/fixtures/`, and the evaluation fixture grown to a given
//! size.

use serde_json::{json, Value};

/// `(file name, body bytes)` of every fixture, sorted by name.
pub fn all() -> Vec<(String, Vec<u8>)> {
    let dir = crate::repo().join("tests/fixtures");
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

/// The evaluation topic's name after a connector's topic prefix.
pub const EVALUATION: &str = "evaluation_completed";

/// The evaluation fixture grown to exactly `size` bytes with a large `data_enrichments`, as
/// RiskOS sends when it includes the whole evaluation. The filler is pseudo-random letters and
/// digits, which the producer's lz4 cannot shrink: a record's size on the broker is then its
/// size as made (a run of one letter would compress under any broker limit).
pub fn evaluation_of_size(event_id: &str, size: usize) -> Vec<u8> {
    let (_, fixture) = all()
        .into_iter()
        .find(|(n, _)| n == "riskos.evaluation_completed.docv.json")
        .unwrap();
    let mut body: Value = serde_json::from_slice(&fixture).unwrap();
    body["event_id"] = json!(event_id);
    body["data"]["data_enrichments"] = json!([{"response": {"blob": ""}}]);
    let without = serde_json::to_vec(&body).unwrap().len();
    assert!(without < size);
    body["data"]["data_enrichments"][0]["response"]["blob"] = json!(filler(size - without));
    let bytes = serde_json::to_vec(&body).unwrap();
    assert_eq!(bytes.len(), size);
    bytes
}

/// `len` letters and digits from a fixed xorshift sequence.
fn filler(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ALPHABET[(state % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}
