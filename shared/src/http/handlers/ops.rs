//! `GET /healthz`, `GET /readyz` and `GET /metrics`: the operator's probes and counters,
//! served by `bff-local` only.
//!
//! In AWS no Lambda function serves these paths (the router answers 404) and no
//! CloudFront behaviour routes them to one: Lambda and CloudFront report the functions'
//! health themselves. Liveness says only that the process answers; readiness checks the
//! store and the provider's discovery, each bounded by [`READY_TIMEOUT`], so a probe never
//! hangs on a dead dependency. Neither answer names a user, a token or an endpoint.

use std::time::Duration;

use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue};
use lambda_http::{Body, Response};
use serde_json::json;

use super::Reply;
use crate::http::app::App;
use crate::http::error::RequestError;
use crate::http::response::json;
use crate::store::StoreKey;

/// How long each readiness check may take before it counts as failed.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Handles `GET /healthz`: 200 as long as the process serves.
pub fn healthz() -> Reply {
    Ok(json(StatusCode::OK, &json!({ "status": "ok" })))
}

/// Handles `GET /metrics`: the process's counters in the Prometheus text format; 404
/// with `BFF_METRICS=off`.
pub fn metrics(app: &App) -> Reply {
    if !app.config.metrics {
        return Err(RequestError::NotFound.into());
    }
    let mut response = Response::new(Body::Text(app.metrics.prometheus()));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// Handles `GET /readyz`: 200 when the store and the provider's discovery answer within
/// [`READY_TIMEOUT`], else 503 naming what failed.
pub async fn readyz(app: &App) -> Reply {
    let store = async {
        // A read of a key that never exists: one round trip, nothing written.
        let probe = StoreKey::probe();
        tokio::time::timeout(READY_TIMEOUT, app.store.get_document(&probe, app.clock.now()))
            .await
            .is_ok_and(|read| read.is_ok())
    };
    let provider = async {
        tokio::time::timeout(READY_TIMEOUT, app.oidc.discovery_reachable())
            .await
            .is_ok_and(|fetched| fetched.is_ok())
    };
    let (store, provider) = tokio::join!(store, provider);
    let checks = json!({ "store": store, "provider": provider });
    if store && provider {
        return Ok(json(StatusCode::OK, &json!({ "status": "ready", "checks": checks })));
    }
    let failed = match (store, provider) {
        (false, false) => "the store and the provider's discovery are unreachable",
        (false, true) => "the store is unreachable",
        _ => "the provider's discovery is unreachable",
    };
    Ok(json(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({ "error": "not_ready", "error_description": failed, "checks": checks }),
    ))
}
