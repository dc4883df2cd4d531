//! May the connector's principal write to its topics? Asked without writing: Kafka's
//! DescribeTopics reports, on request, the operations the caller is authorized for on each
//! topic (KIP-430), which is how `config check` shows a missing WRITE ACL before the first
//! webhook meets it.
//!
//! rdkafka (the crate) does not wrap librdkafka's `rd_kafka_DescribeTopics`, so this file calls
//! it through `rdkafka::bindings`; every pointer it makes is destroyed before it returns.

use std::ffi::{c_char, CStr, CString};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};

/// What the cluster says about one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TopicAccess {
    /// The topic does not exist (or the principal may not even describe it).
    Unknown(String),
    /// The operations the principal is authorized for include WRITE.
    Writable,
    /// They do not.
    NotWritable,
    /// The broker did not report authorized operations (an old broker).
    NotReported,
}

/// Why the question could not be asked.
#[derive(Debug, thiserror::Error)]
#[error("describing topics failed: {0}")]
pub(crate) struct PermissionsError(String);

const ACL_OPERATION_WRITE: i32 = rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_WRITE as i32;

/// The access of `client`'s principal to each of `topics`.
pub(crate) fn topic_access<C: ClientContext>(
    client: &Client<C>,
    topics: &[String],
    timeout: Duration,
) -> Result<Vec<(String, TopicAccess)>, PermissionsError> {
    let names: Vec<CString> = topics
        .iter()
        .map(|t| CString::new(t.as_str()).map_err(|_| PermissionsError(format!("topic {t:?}"))))
        .collect::<Result<_, _>>()?;
    let mut pointers: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
    let rk = client.native_ptr();
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: every pointer below comes from librdkafka for this call (or from `names`, which
    // outlives it), is used only while alive, and is destroyed exactly once at the end.
    unsafe {
        let collection =
            rd::rd_kafka_TopicCollection_of_topic_names(pointers.as_mut_ptr(), pointers.len());
        let options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
        );
        let error = rd::rd_kafka_AdminOptions_set_include_authorized_operations(options, 1);
        if !error.is_null() {
            rd::rd_kafka_error_destroy(error);
        }
        let mut errstr = [0 as c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            timeout_ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let queue = rd::rd_kafka_queue_new(rk);
        rd::rd_kafka_DescribeTopics(rk, collection, options, queue);
        let event = rd::rd_kafka_queue_poll(queue, timeout_ms.saturating_add(1_000));
        let answer = read_answer(event);
        if !event.is_null() {
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_queue_destroy(queue);
        rd::rd_kafka_AdminOptions_destroy(options);
        rd::rd_kafka_TopicCollection_destroy(collection);
        answer
    }
}

/// Reads a DescribeTopics result event.
///
/// # Safety
/// `event` is null or a live event from `rd_kafka_queue_poll`.
unsafe fn read_answer(
    event: *mut rd::rd_kafka_event_t,
) -> Result<Vec<(String, TopicAccess)>, PermissionsError> {
    if event.is_null() {
        return Err(PermissionsError("no answer in time".into()));
    }
    if rd::rd_kafka_event_error(event) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        let message = CStr::from_ptr(rd::rd_kafka_event_error_string(event));
        return Err(PermissionsError(message.to_string_lossy().into_owned()));
    }
    let result = rd::rd_kafka_event_DescribeTopics_result(event);
    if result.is_null() {
        return Err(PermissionsError("unexpected answer".into()));
    }
    let mut count = 0usize;
    let descriptions = rd::rd_kafka_DescribeTopics_result_topics(result, &mut count);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let description = *descriptions.add(i);
        let name = CStr::from_ptr(rd::rd_kafka_TopicDescription_name(description))
            .to_string_lossy()
            .into_owned();
        let error = rd::rd_kafka_TopicDescription_error(description);
        if !error.is_null()
            && rd::rd_kafka_error_code(error) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            let reason = CStr::from_ptr(rd::rd_kafka_error_string(error))
                .to_string_lossy()
                .into_owned();
            out.push((name, TopicAccess::Unknown(reason)));
            continue;
        }
        let mut operations = 0usize;
        // Read as plain integers: a broker newer than this librdkafka may name operations the
        // binding's enum does not have.
        let listed =
            rd::rd_kafka_TopicDescription_authorized_operations(description, &mut operations)
                as *const i32;
        let access = if listed.is_null() || operations == 0 {
            TopicAccess::NotReported
        } else if std::slice::from_raw_parts(listed, operations).contains(&ACL_OPERATION_WRITE) {
            TopicAccess::Writable
        } else {
            TopicAccess::NotWritable
        };
        out.push((name, access));
    }
    Ok(out)
}
