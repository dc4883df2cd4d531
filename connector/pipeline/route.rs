//! Routing: event type → topic and value schema.
//!
//! Topic names follow one rule: `<prefix><event_type>` with `:` → `.` and every other character
//! outside `[a-z0-9._-]` → `_`. Types with no schema file go to `<prefix>unrecognized`, so a
//! topic name never comes from payload text the catalog does not know.

use std::collections::HashMap;
use std::sync::Arc;

use crate::pipeline::schema::{Catalog, SchemaEntry};

/// Topic suffix for event types without a schema of their own.
pub const UNRECOGNIZED_TOPIC: &str = "unrecognized";

/// Topic suffix for bodies kept raw because they could not be prepared.
pub const QUARANTINE_TOPIC: &str = "quarantine";

/// The quarantine topic of a prefix: `<prefix>quarantine`.
pub fn quarantine_topic(prefix: &str) -> String {
    format!("{prefix}{QUARANTINE_TOPIC}")
}

/// The topic for an event type.
pub fn topic_name(prefix: &str, event_type: &str) -> String {
    let mut topic = String::with_capacity(prefix.len() + event_type.len());
    topic.push_str(prefix);
    topic.extend(event_type.chars().map(|c| match c {
        ':' => '.',
        'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
        _ => '_',
    }));
    topic
}

/// Where one event type goes and how it is encoded.
#[derive(Debug)]
pub struct Route {
    /// Destination topic.
    pub topic: String,
    /// Its value schema.
    pub schema: Arc<SchemaEntry>,
    /// Bytes written before every Avro datum: the Confluent header (magic byte and schema id)
    /// or the single-object header (marker and fingerprint), per `schemas.encoding`.
    pub wire_prefix: Vec<u8>,
}

/// A route per schema plus the fallback.
#[derive(Debug)]
pub struct Routes {
    by_event_type: HashMap<String, Arc<Route>>,
    fallback: Arc<Route>,
}

/// A topic and schema still waiting for its wire prefix (registration happens in between).
pub struct PlannedRoute {
    /// Destination topic.
    pub topic: String,
    /// Its value schema.
    pub schema: Arc<SchemaEntry>,
}

impl Routes {
    /// The topic of every schema in the catalog, the fallback last.
    pub fn plan(catalog: &Catalog, prefix: &str) -> Vec<PlannedRoute> {
        catalog
            .entries()
            .into_iter()
            .map(|entry| PlannedRoute {
                topic: if entry.is_fallback() {
                    format!("{prefix}{UNRECOGNIZED_TOPIC}")
                } else {
                    topic_name(prefix, &entry.event_type)
                },
                schema: entry.clone(),
            })
            .collect()
    }

    /// Builds the table from planned routes and their wire prefixes.
    pub fn new(routes: impl IntoIterator<Item = (PlannedRoute, Vec<u8>)>) -> Self {
        let mut by_event_type = HashMap::new();
        let mut fallback = None;
        for (planned, wire_prefix) in routes {
            let route = Arc::new(Route {
                topic: planned.topic,
                schema: planned.schema,
                wire_prefix,
            });
            if route.schema.is_fallback() {
                fallback = Some(route);
            } else {
                by_event_type.insert(route.schema.event_type.clone(), route);
            }
        }
        Self {
            by_event_type,
            fallback: fallback.expect("the catalog always has a fallback schema"),
        }
    }

    /// The route for an event type (the fallback when it has no schema).
    pub fn get(&self, event_type: &str) -> &Arc<Route> {
        self.by_event_type.get(event_type).unwrap_or(&self.fallback)
    }

    /// Every route, fallback last.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.by_event_type
            .values()
            .chain(std::iter::once(&self.fallback))
    }
}

/// The routing table of every topic prefix the endpoints use (endpoints sharing a prefix
/// share its table).
#[derive(Debug, Default)]
pub struct RoutesByPrefix(Vec<(String, Arc<Routes>)>);

impl RoutesByPrefix {
    /// Adds the table of `prefix`.
    pub fn insert(&mut self, prefix: &str, routes: Routes) {
        self.0.push((prefix.to_string(), Arc::new(routes)));
    }

    /// The table of `prefix`. Panics when no endpoint uses it: the tables are built from the
    /// endpoints' prefixes, so asking for another one is a bug.
    pub fn get(&self, prefix: &str) -> &Arc<Routes> {
        self.0
            .iter()
            .find(|(p, _)| p == prefix)
            .map(|(_, routes)| routes)
            .unwrap_or_else(|| panic!("no routing table for topic prefix `{prefix}`"))
    }

    /// Every route's topic, over every prefix.
    pub fn topics(&self) -> Vec<String> {
        self.0
            .iter()
            .flat_map(|(_, routes)| routes.all().map(|r| r.topic.clone()))
            .collect()
    }

    /// Every schema, once (the tables of all prefixes share them).
    pub fn schemas(&self) -> Vec<Arc<SchemaEntry>> {
        let Some((_, routes)) = self.0.first() else {
            return Vec::new();
        };
        routes.all().map(|r| r.schema.clone()).collect()
    }

    /// The quarantine topic of every prefix.
    pub fn quarantine_topics(&self) -> Vec<String> {
        self.0.iter().map(|(p, _)| quarantine_topic(p)).collect()
    }
}

/// Routes with single-object framing: no registry involved.
pub fn single_object_routes(catalog: &Catalog, topic_prefix: &str) -> Routes {
    Routes::new(Routes::plan(catalog, topic_prefix).into_iter().map(|plan| {
        let prefix = crate::pipeline::schema::encode::single_object_prefix(&plan.schema.schema);
        (plan, prefix)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_the_rule() {
        let cases = [
            ("create:cases", "riskos.create.cases"),
            (
                "case_management_notification_case_closure",
                "riskos.case_management_notification_case_closure",
            ),
            (
                "create:bankaccountsnapshots:status_description",
                "riskos.create.bankaccountsnapshots.status_description",
            ),
            ("Weird Type/../x", "riskos._eird__ype_.._x"),
            ("évènement", "riskos._v_nement"),
        ];
        for (event_type, topic) in cases {
            assert_eq!(topic_name("riskos.", event_type), topic);
        }
    }
}
