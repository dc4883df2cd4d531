//! `POST <auth.oauth2.token_endpoint.path>`: the client-credentials token endpoint. Parses the
//! request (form-encoded per RFC 6749, or JSON) and lets [`TokenIssuer`] do the rest.
//!
//! [`TokenIssuer`]: crate::auth::token_endpoint::TokenIssuer

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::ApiError;
use super::AppState;
use crate::auth::token_endpoint::{TokenError, TokenRequest};
use crate::auth::unix_now;

/// Largest token request body; real ones are a few hundred bytes.
pub const MAX_TOKEN_REQUEST_BYTES: usize = 8 * 1024;

/// Issues an access token.
pub async fn issue(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let issuer = state
        .ingress
        .auth()
        .token_issuer()
        // The route exists only with an issuer; without one no client can be valid.
        .ok_or(ApiError::Token(TokenError::InvalidClient))?;
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let form = match essence.as_str() {
        "application/x-www-form-urlencoded" => true,
        "application/json" => false,
        _ => {
            return Err(ApiError::Token(TokenError::InvalidRequest(
                "content type must be application/x-www-form-urlencoded or application/json",
            )))
        }
    };
    let body = axum::body::to_bytes(body, MAX_TOKEN_REQUEST_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(MAX_TOKEN_REQUEST_BYTES))?;
    let request: TokenRequest = if form {
        serde_urlencoded::from_bytes(&body).map_err(|_| unreadable())?
    } else {
        serde_json::from_slice(&body).map_err(|_| unreadable())?
    };
    let token = issuer.issue(&request, headers.get(header::AUTHORIZATION), unix_now())?;
    tracing::info!(expires_in = token.expires_in, "access token issued");
    let mut response = Json(token).into_response();
    // RFC 6749 §5.1: tokens must not be cached.
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

fn unreadable() -> ApiError {
    ApiError::Token(TokenError::InvalidRequest("the body cannot be parsed"))
}
