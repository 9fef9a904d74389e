//! The container-credentials endpoint: `GET /v1/credentials` (the path is configurable), the
//! URL `AWS_CONTAINER_CREDENTIALS_FULL_URI` points the AWS SDKs at, with the pod's
//! service-account token in `Authorization` (`AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`).
//!
//! The answer is the JSON every SDK's container provider reads: `AccessKeyId`,
//! `SecretAccessKey`, `Token`, `AccountId` and `Expiration` (RFC 3339). A refusal is
//! `{"code": …, "message": …}` with the status EKS Pod Identity's agent answers (400, 401, 403,
//! 404, 500); the SDKs retry 5xx only. The domain, [`ContainerCredentials`], does everything
//! else: a cache hit is answered on the async worker, anything else (which may check a
//! signature or wait for an identical request's assumption) on the blocking pool.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::sidecar::{ContainerCredentials, ContainerCredentialsError, PodCredentials};

/// `GET {path}` over `endpoint`.
pub fn credentials_routes(endpoint: Arc<ContainerCredentials>, path: &str) -> Router {
    Router::new()
        .route(path, get(credentials))
        .with_state(endpoint)
}

async fn credentials(
    State(endpoint): State<Arc<ContainerCredentials>>,
    headers: HeaderMap,
) -> Response {
    // A header that is not visible ASCII cannot hold a token: it is refused as one.
    let authorization = match headers.get(header::AUTHORIZATION).map(HeaderValue::to_str) {
        None => None,
        Some(Ok(value)) => Some(value.to_owned()),
        Some(Err(_)) => {
            return error(&endpoint.refused(ContainerCredentialsError::InvalidToken(
                "the Authorization header is not a service account token".into(),
            )))
        }
    };
    // A hit is answered in place; anything else may wait for an assumption or check a
    // signature, which is not for the async workers.
    if let Some(credentials) = endpoint.cached(authorization.as_deref()) {
        return render(&credentials);
    }
    let answer =
        tokio::task::spawn_blocking(move || endpoint.credentials(authorization.as_deref())).await;
    match answer {
        Ok(Ok(credentials)) => render(&credentials),
        Ok(Err(e)) => error(&e),
        Err(join) => {
            tracing::error!(error = %join, "container credentials: the task did not finish");
            error(&ContainerCredentialsError::Internal(String::new()))
        }
    }
}

fn render(c: &PodCredentials) -> Response {
    let body = serde_json::json!({
        "AccessKeyId": c.access_key_id,
        "SecretAccessKey": c.secret_access_key,
        "Token": c.token,
        "AccountId": c.account_id,
        "Expiration": c.expiration.to_string(),
    });
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error(e: &ContainerCredentialsError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // An internal failure's detail is for the log, not for the pod.
    let message = if status.is_server_error() {
        tracing::warn!(error = %e, "container credentials: refused");
        "The request processing has failed because of an unknown error.".to_owned()
    } else {
        crate::error::bounded_message(&e.to_string()).into_owned()
    };
    let body = serde_json::json!({"code": e.code(), "message": message});
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sidecar::decision_log::DecisionLog;
    use crate::sidecar::{Api, CacheConfig, ContainerCredentialsConfig};
    use crate::snapshot::SnapshotStore;
    use axum::body::Body;
    use axum::http::Request;
    use tower_service::Service;

    struct NoGauges;

    impl crate::observe::Gauges for NoGauges {
        fn render(&self, _out: &mut String) {}
    }

    fn setup() -> (Arc<Api>, Router) {
        let api = Arc::new(Api::new(
            Arc::new(SnapshotStore::new()),
            &CacheConfig::default(),
            DecisionLog::off(),
        ));
        let router = credentials_routes(
            Arc::new(ContainerCredentials::new(
                Arc::clone(&api),
                ContainerCredentialsConfig::default(),
            )),
            "/v1/credentials",
        );
        (api, router)
    }

    async fn call(
        router: &Router,
        authorization: Option<&[u8]>,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = Request::get("/v1/credentials");
        if let Some(value) = authorization {
            request = request.header(
                header::AUTHORIZATION,
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        let response = router
            .clone()
            .call(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn refusals_are_json_with_the_agents_status() {
        let (api, router) = setup();
        let (status, body) = call(&router, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], "InvalidParameterException");
        assert_eq!(body["message"], "Service account token cannot be empty");
        let (status, body) = call(&router, Some(b"not-a-jwt")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["code"], "InvalidTokenException");
        let (status, _) = call(&router, Some(b"\xff\xfe")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // Each refusal was counted, the one the edge made too.
        let metrics = api.metrics().render(&NoGauges);
        assert!(
            metrics.contains(
                "iamlet_request_duration_seconds_count{method=\"ContainerCredentials\",result=\"error\"} 3"
            ),
            "{metrics}"
        );
    }

    #[tokio::test]
    async fn internal_failures_hide_their_detail() {
        let response = error(&ContainerCredentialsError::Internal(
            "tenant 111122223333 is stale".into(),
        ));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["code"], "InternalServerException");
        assert!(!body["message"].as_str().unwrap().contains("stale"));
    }
}
