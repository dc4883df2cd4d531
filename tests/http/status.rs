//! README's status-code table, row by row.

use crate::helpers::{fixture, Connector};

#[tokio::test]
async fn a_webhook_is_accepted_once_the_store_has_it() {
    let connector = Connector::start().await;
    let reply = connector
        .post_json(fixture("riskos.case_closure.match.json"))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    assert_eq!(reply.json()["status"], "accepted");
    assert_eq!(connector.store.kept().len(), 1);
}
