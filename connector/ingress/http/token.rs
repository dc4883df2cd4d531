//! `POST <auth.oauth2.token_endpoint.path>`: the client-credentials token endpoint. Parses the
//! request (form-encoded per RFC 6749, or JSON as Alloy sends it: [`TokenBody`]), lets
//! [`TokenIssuer`] authenticate the client (Basic, body fields, or both when they agree) and
//! issue, and reports the outcome to the [back-off](crate::ingress::auth::backoff): a failure from an
//! address already waiting is answered 429 + `Retry-After`. The right credentials always get
//! their token, so a stranger behind the same address (an ingress, a NAT) cannot lock the
//! vendor out.
//!
//! [`TokenIssuer`]: crate::ingress::auth::token_endpoint::TokenIssuer
//! [`TokenBody`]: crate::ingress::auth::token_endpoint::TokenBody

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::ApiError;
use super::guard::ClientIp;
use super::Endpoint;
use crate::ingress::auth::backoff::Failure;
use crate::ingress::auth::token_endpoint::{client_authorization, TokenBody, TokenError};

/// Largest token request body; real ones are a few hundred bytes.
pub(crate) const MAX_TOKEN_REQUEST_BYTES: usize = 8 * 1024;

/// Issues an access token.
pub(crate) async fn issue(
    State(endpoint): State<Arc<Endpoint>>,
    client: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let issuer = endpoint
        .ingress
        .auth()
        .token_issuer()
        // The route exists only with an issuer; without one no client can be valid.
        .ok_or(ApiError::Token(TokenError::InvalidClient))?;
    // The guard always sets it; without it every caller shares one (strict) back-off.
    let client = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |Extension(ip)| ip.0);
    let authorization = client_authorization(&headers)?;
    let format = TokenBody::from_content_type(headers.get(header::CONTENT_TYPE))?;
    let body = axum::body::to_bytes(body, MAX_TOKEN_REQUEST_BYTES)
        .await
        .map_err(|error| {
            // Over the limit is 413; a body that breaks off (a bad chunked encoding) is the
            // client's malformed request.
            let over_limit = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if over_limit {
                ApiError::PayloadTooLarge(MAX_TOKEN_REQUEST_BYTES)
            } else {
                ApiError::Token(TokenError::InvalidRequest("body"))
            }
        })?;
    let request = format.parse(&body)?;
    let token = match issuer.issue(&request, authorization, crate::common::clock::now_secs()) {
        Ok(token) => {
            issuer.backoff().succeeded(client);
            token
        }
        Err(TokenError::InvalidClient) => match issuer.backoff().failed(client) {
            Failure::Waiting(wait) => return Err(ApiError::TokenBackoff(retry_after_secs(wait))),
            Failure::Counted(wait) => {
                if let Some(wait) = wait {
                    tracing::warn!(
                        wait_ms = wait.as_millis() as u64,
                        "token endpoint: repeated failed client authentication, the address must wait"
                    );
                }
                return Err(ApiError::Token(TokenError::InvalidClient));
            }
        },
        // Nothing was compared: the attempt neither counts nor resets.
        Err(other) => return Err(other.into()),
    };
    tracing::info!(expires_in = token.expires_in, "access token issued");
    let mut response = Json(token).into_response();
    // RFC 6749 §5.1: tokens must not be cached.
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Whole seconds for `Retry-After`, rounded up, at least 1.
fn retry_after_secs(wait: Duration) -> u32 {
    u32::try_from(wait.as_millis().div_ceil(1000))
        .unwrap_or(u32::MAX)
        .max(1)
}
