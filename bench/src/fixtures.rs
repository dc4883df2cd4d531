//! The request mix: every `tests/fixtures/*.json`, compact, with the event id (`event_id`, or
//! `request_token` for the request-token envelope) replaced per request so no receiver's
//! duplicate check ever short-circuits.

use std::path::Path;

use anyhow::{bail, Context};
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::Value;

const PLACEHOLDER: &str = "\u{1}bench-id\u{1}";

/// One fixture split around its id.
#[derive(Debug, Clone)]
pub struct Template {
    /// File name, for messages.
    pub name: String,
    prefix: Vec<u8>,
    suffix: Vec<u8>,
}

/// The mix, round-robin by request sequence number.
#[derive(Debug, Clone)]
pub struct Bodies {
    templates: Vec<Template>,
    tag: String,
}

impl Bodies {
    /// Loads every fixture in `dir`; ids become `<tag>-<seq>`.
    pub fn load(dir: &Path, tag: &str) -> anyhow::Result<Self> {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        let mut templates = Vec::new();
        for path in paths {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let mut json: Value = serde_json::from_slice(&std::fs::read(&path)?)
                .with_context(|| format!("parsing {}", path.display()))?;
            let Some(object) = json.as_object_mut() else {
                bail!("{name}: not an object");
            };
            let key = if object.contains_key("event_id") {
                "event_id"
            } else if object.contains_key("request_token") {
                "request_token"
            } else {
                bail!("{name}: neither event_id nor request_token");
            };
            object.insert(key.into(), Value::String(PLACEHOLDER.into()));
            let text = serde_json::to_string(&json)?;
            let marker = serde_json::to_string(PLACEHOLDER)?;
            let at = text.find(&marker).expect("the placeholder is in the text");
            templates.push(Template {
                name,
                prefix: format!("{}\"", &text[..at]).into_bytes(),
                suffix: format!("\"{}", &text[at + marker.len()..]).into_bytes(),
            });
        }
        if templates.is_empty() {
            bail!("no *.json fixtures in {}", dir.display());
        }
        Ok(Self {
            templates,
            tag: tag.to_string(),
        })
    }

    /// The fixtures, in mix order.
    pub fn templates(&self) -> &[Template] {
        &self.templates
    }

    /// The id of request `seq`.
    pub fn id(&self, seq: u64) -> String {
        format!("{}-{seq:010}", self.tag)
    }

    /// The body of request `seq`: fixture `seq % n` with id `<tag>-<seq>`.
    pub fn body(&self, seq: u64) -> Bytes {
        let t = &self.templates[(seq % self.templates.len() as u64) as usize];
        let id = self.id(seq);
        let mut out = BytesMut::with_capacity(t.prefix.len() + id.len() + t.suffix.len());
        out.put_slice(&t.prefix);
        out.put_slice(id.as_bytes());
        out.put_slice(&t.suffix);
        out.freeze()
    }

    /// Mean body size in bytes.
    pub fn mean_size(&self) -> usize {
        let id = self.id(0).len();
        self.templates
            .iter()
            .map(|t| t.prefix.len() + id + t.suffix.len())
            .sum::<usize>()
            / self.templates.len()
    }
}
