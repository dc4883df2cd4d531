//! Reading an HTTP client error's causes: reqwest's own message says only "error sending
//! request for url (…)"; whether it was a refused certificate or a closed port is further down
//! the chain, and that is what an operator needs to read (and start-up needs to tell apart).

use std::error::Error;

/// `error` and each of its causes, `: `-separated.
pub(crate) fn describe(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // hyper and io wrappers often repeat their inner error's message.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// True when a TLS handshake or session was refused (an unknown issuer, a missing client
/// certificate): a configuration problem, not an outage, so start-up stops on it instead of
/// waiting. rustls errors reach here inside an `io::Error`, whose `source` skips the error it
/// wraps, so each `io::Error` is opened too.
pub(crate) fn tls_refused(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(current) = next {
        if current.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            if tls_refused(inner) {
                return true;
            }
        }
        next = current.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("error sending request")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_are_listed_and_tls_refusals_found_inside_io_errors() {
        let refused = Outer(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        let text = describe(&refused);
        assert!(text.starts_with("error sending request: "), "{text}");
        assert!(text.contains("UnknownIssuer"), "{text}");
        assert!(tls_refused(&refused));
        let closed = Outer(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(!tls_refused(&closed));
    }
}
