//! The durable spool: an append-only segment log on local disk for records Kafka could not ack
//! in time. A record is answered 200 only after its append is fsync'd; a forwarder drains the
//! segments in order once Kafka acks again, and deletes a segment only after every record in it
//! was acked.
//!
//! Segment files are `<seq:020>.seg`; each record is `len: u32 LE | crc32: u32 LE | body`, the
//! body being `topic, key, headers, value, partition key` as length-prefixed fields (the key
//! and the partition key behind a presence byte). Segments written by earlier versions may
//! follow a record's body with `1` and a length-prefixed quarantine twin of it; such a record
//! reads as the record alone (the forwarder now asks the pipeline for the quarantine record
//! when Kafka refuses one as too large). The partition key, not the partition, is
//! kept: the forwarder computes the partition from it as a record produced at once gets it,
//! so a spooled record lands where it would have. A torn tail (a crash in the middle of an
//! append, which was therefore never acknowledged) is ignored on recovery.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A spooled record: everything needed to produce it later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolRecord {
    /// Destination topic.
    pub topic: String,
    /// Kafka key.
    pub key: Option<String>,
    /// The value the partition is computed from (see [`super::Record::partition_key`]).
    pub partition_key: Option<String>,
    /// Kafka headers.
    pub headers: Vec<(String, String)>,
    /// Encoded value.
    pub value: Vec<u8>,
}

/// Spool failures; each one means the request must not be answered 2xx.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// `delivery.spool.max_bytes` reached.
    #[error("spool is full ({0} bytes)")]
    Full(u64),
    /// Disk I/O failed.
    #[error("spool i/o: {0}")]
    Io(#[from] io::Error),
}

/// A sealed segment handed to the forwarder.
#[derive(Debug)]
pub struct Segment {
    /// Path of the file.
    pub path: PathBuf,
    /// Its records, in order.
    pub records: Vec<SpoolRecord>,
}

struct Active {
    seq: u64,
    file: File,
    bytes: u64,
    records: u64,
}

struct Inner {
    active: Option<Active>,
    sealed: VecDeque<PathBuf>,
    next_seq: u64,
}

/// The spool. Cheap to share behind an `Arc`; appends and reads block, so call them from
/// `spawn_blocking`.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    high_water_mark: f64,
    inner: Mutex<Inner>,
    bytes: AtomicU64,
    pending: AtomicU64,
    notify: tokio::sync::Notify,
}

impl Spool {
    /// Opens (creating) the folder and adopts segments left by a previous run, oldest first.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        segment_bytes: u64,
        high_water_mark: f64,
    ) -> Result<Arc<Self>, SpoolError> {
        std::fs::create_dir_all(dir)?;
        let mut segments: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| {
                let seq = p.file_stem()?.to_str()?.parse().ok()?;
                (p.extension()? == "seg").then_some((seq, p))
            })
            .collect();
        segments.sort();
        let mut bytes = 0;
        let mut pending = 0;
        for (_, path) in &segments {
            bytes += std::fs::metadata(path)?.len();
            pending += read_segment(path)?.len() as u64;
        }
        let next_seq = segments.last().map_or(0, |(seq, _)| seq + 1);
        Ok(Arc::new(Self {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes,
            high_water_mark,
            inner: Mutex::new(Inner {
                active: None,
                sealed: segments.into_iter().map(|(_, p)| p).collect(),
                next_seq,
            }),
            bytes: AtomicU64::new(bytes),
            pending: AtomicU64::new(pending),
            notify: tokio::sync::Notify::new(),
        }))
    }

    /// Records appended and not yet acked by Kafka.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::SeqCst)
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    /// The configured limit.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// True when the spool holds more than its high-water mark (readiness fails).
    pub fn above_high_water_mark(&self) -> bool {
        self.bytes() as f64 > self.max_bytes as f64 * self.high_water_mark
    }

    /// Appends one record and fsyncs it. Blocking.
    pub fn append(&self, record: &SpoolRecord) -> Result<(), SpoolError> {
        let frame = frame(record);
        let mut inner = self.inner.lock().expect("spool lock");
        if self.bytes() + frame.len() as u64 > self.max_bytes {
            return Err(SpoolError::Full(self.max_bytes));
        }
        if inner.active.is_none() {
            let seq = inner.next_seq;
            inner.next_seq += 1;
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(self.segment_path(seq))?;
            // Make the new file's directory entry durable too.
            File::open(&self.dir)?.sync_all()?;
            inner.active = Some(Active {
                seq,
                file,
                bytes: 0,
                records: 0,
            });
        }
        let active = inner.active.as_mut().expect("just created");
        active.file.write_all(&frame)?;
        active.file.sync_data()?;
        active.bytes += frame.len() as u64;
        active.records += 1;
        self.bytes.fetch_add(frame.len() as u64, Ordering::SeqCst);
        self.pending.fetch_add(1, Ordering::SeqCst);
        if active.bytes >= self.segment_bytes {
            self.seal(&mut inner);
        }
        drop(inner);
        self.notify.notify_one();
        Ok(())
    }

    /// The oldest segment to drain, sealing the active one when nothing else is waiting.
    /// Blocking.
    pub fn next_segment(&self) -> Result<Option<Segment>, SpoolError> {
        let path = {
            let mut inner = self.inner.lock().expect("spool lock");
            if inner.sealed.is_empty() && inner.active.as_ref().is_some_and(|a| a.records > 0) {
                self.seal(&mut inner);
            }
            inner.sealed.front().cloned()
        };
        match path {
            Some(path) => Ok(Some(Segment {
                records: read_segment(&path)?,
                path,
            })),
            None => Ok(None),
        }
    }

    /// Marks one record of the segment being drained as acked.
    pub fn acked(&self) {
        self.pending.fetch_sub(1, Ordering::SeqCst);
    }

    /// Deletes a fully acked segment. Blocking.
    pub fn remove(&self, segment: &Segment) -> Result<(), SpoolError> {
        let size = std::fs::metadata(&segment.path)?.len();
        std::fs::remove_file(&segment.path)?;
        self.bytes.fetch_sub(size, Ordering::SeqCst);
        let mut inner = self.inner.lock().expect("spool lock");
        inner.sealed.retain(|p| p != &segment.path);
        Ok(())
    }

    /// Resolves when a record was appended since the last call.
    pub async fn appended(&self) {
        self.notify.notified().await;
    }

    fn seal(&self, inner: &mut Inner) {
        if let Some(active) = inner.active.take() {
            inner.sealed.push_back(self.segment_path(active.seq));
        }
    }

    fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.seg"))
    }
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn frame(record: &SpoolRecord) -> Vec<u8> {
    let body = encode(record);
    let mut frame = Vec::with_capacity(body.len() + 8);
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    frame.extend_from_slice(&body);
    frame
}

fn encode(record: &SpoolRecord) -> Vec<u8> {
    let mut body = Vec::with_capacity(record.value.len() + 256);
    put(&mut body, record.topic.as_bytes());
    match &record.key {
        Some(key) => {
            body.push(1);
            put(&mut body, key.as_bytes());
        }
        None => body.push(0),
    }
    body.extend_from_slice(&(record.headers.len() as u32).to_le_bytes());
    for (k, v) in &record.headers {
        put(&mut body, k.as_bytes());
        put(&mut body, v.as_bytes());
    }
    put(&mut body, &record.value);
    match &record.partition_key {
        Some(key) => {
            body.push(1);
            put(&mut body, key.as_bytes());
        }
        None => body.push(0),
    }
    body
}

/// Every intact record of a segment; stops at a torn or corrupt tail.
fn read_segment(path: &Path) -> Result<Vec<SpoolRecord>, SpoolError> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let mut records = Vec::new();
    let mut rest = data.as_slice();
    while rest.len() >= 8 {
        let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap());
        let Some(body) = rest.get(8..8 + len) else {
            break;
        };
        if crc32fast::hash(body) != crc {
            break;
        }
        match parse(body) {
            Some(record) => records.push(record),
            None => break,
        }
        rest = &rest[8 + len..];
    }
    Ok(records)
}

fn parse(mut body: &[u8]) -> Option<SpoolRecord> {
    fn take<'a>(body: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(body.get(..4)?.try_into().ok()?) as usize;
        let value = body.get(4..4 + len)?;
        *body = &body[4 + len..];
        Some(value)
    }
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
    let topic = text(take(&mut body)?)?;
    let has_key = *body.first()?;
    body = &body[1..];
    let key = if has_key == 1 {
        Some(text(take(&mut body)?)?)
    } else {
        None
    };
    let count = u32::from_le_bytes(body.get(..4)?.try_into().ok()?);
    body = &body[4..];
    let mut headers = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let k = text(take(&mut body)?)?;
        let v = text(take(&mut body)?)?;
        headers.push((k, v));
    }
    let value = take(&mut body)?.to_vec();
    let partition_key = match body.first()? {
        0 => {
            body = &body[1..];
            None
        }
        1 => {
            body = &body[1..];
            Some(text(take(&mut body)?)?)
        }
        _ => return None,
    };
    // An earlier version's quarantine twin: checked (a corrupt one ends the segment, as any
    // corrupt record does) and left unused.
    match body.first() {
        None => {}
        Some(1) => {
            body = &body[1..];
            parse(take(&mut body)?)?;
        }
        Some(_) => return None,
    }
    Some(SpoolRecord {
        topic,
        key,
        partition_key,
        headers,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u32) -> SpoolRecord {
        SpoolRecord {
            topic: "riskos.create.cases".into(),
            key: i.is_multiple_of(2).then(|| format!("key-{i}")),
            partition_key: i.is_multiple_of(3).then(|| format!("case-{i}")),
            headers: vec![("event_type".into(), "create:cases".into())],
            value: vec![i as u8; 100 + i as usize],
        }
    }

    #[test]
    fn records_are_framed_as_earlier_versions_framed_them() {
        // The layout of segments written by earlier versions, byte by byte.
        let mut old = Vec::new();
        put(&mut old, b"t");
        old.extend_from_slice(&[1]);
        put(&mut old, b"k");
        old.extend_from_slice(&1u32.to_le_bytes());
        put(&mut old, b"h");
        put(&mut old, b"v");
        put(&mut old, b"value");
        old.extend_from_slice(&[0]);
        let record = SpoolRecord {
            topic: "t".into(),
            key: Some("k".into()),
            partition_key: None,
            headers: vec![("h".into(), "v".into())],
            value: b"value".to_vec(),
        };
        assert_eq!(encode(&record), old);
        assert_eq!(parse(&old), Some(record));
    }

    /// A segment an earlier version wrote, whose records carried a quarantine twin (`1` and
    /// the twin's body after the record's own): every record reads, the twins are left out.
    #[test]
    fn a_segment_written_with_quarantine_twins_still_reads_record_by_record() {
        let twin = |i: u32| SpoolRecord {
            topic: "riskos.quarantine".into(),
            key: Some(format!("key-{i}")),
            partition_key: None,
            headers: vec![("quarantine_reason".into(), "record_too_large".into())],
            value: format!("{{\"event_id\":\"key-{i}\"}}").into_bytes(),
        };
        let mut segment = Vec::new();
        for i in 0..6 {
            let mut body = encode(&record(i));
            if i % 2 == 1 {
                body.push(1);
                put(&mut body, &encode(&twin(i)));
            }
            segment.extend_from_slice(&(body.len() as u32).to_le_bytes());
            segment.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
            segment.extend_from_slice(&body);
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("{:020}.seg", 7)), &segment).unwrap();
        let spool = Spool::open(dir.path(), 1 << 20, 1 << 20, 0.8).unwrap();
        assert_eq!(spool.pending(), 6);
        let read = spool.next_segment().unwrap().unwrap();
        assert_eq!(read.records, (0..6).map(record).collect::<Vec<_>>());
        // New records go to a later segment than the adopted one.
        spool.append(&record(9)).unwrap();
        assert!(dir.path().join(format!("{:020}.seg", 8)).exists());
    }

    #[test]
    fn records_survive_a_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20, 1000, 0.8).unwrap();
        for i in 0..25 {
            spool.append(&record(i)).unwrap();
        }
        drop(spool);
        let spool = Spool::open(dir.path(), 1 << 20, 1000, 0.8).unwrap();
        assert_eq!(spool.pending(), 25);
        let mut seen = Vec::new();
        while let Some(segment) = spool.next_segment().unwrap() {
            for r in &segment.records {
                seen.push(r.clone());
                spool.acked();
            }
            spool.remove(&segment).unwrap();
        }
        assert_eq!(seen, (0..25).map(record).collect::<Vec<_>>());
        assert_eq!(spool.pending(), 0);
        assert_eq!(spool.bytes(), 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20, 1 << 20, 0.8).unwrap();
        spool.append(&record(1)).unwrap();
        spool.append(&record(2)).unwrap();
        drop(spool);
        let path = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        let spool = Spool::open(dir.path(), 1 << 20, 1 << 20, 0.8).unwrap();
        assert_eq!(spool.pending(), 2);
        let segment = spool.next_segment().unwrap().unwrap();
        assert_eq!(segment.records, vec![record(1), record(2)]);
    }

    #[test]
    fn a_full_spool_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 300, 1 << 20, 0.8).unwrap();
        spool.append(&record(1)).unwrap();
        assert!(matches!(
            spool.append(&record(100)),
            Err(SpoolError::Full(300))
        ));
        assert_eq!(spool.pending(), 1);
    }
}
