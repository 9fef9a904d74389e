//! AWS's error bodies, for every protocol the HTTP edge speaks: the one place where an error
//! becomes an HTTP response. The status comes from the [`AwsCode`]; the body is the shape
//! AWS's own endpoints answer with.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::AwsCode;
#[cfg(test)]
use crate::error::MAX_MESSAGE_CHARS;

/// How a protocol writes its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    /// The Query protocol (IAM, STS): `<ErrorResponse xmlns=…><Error><Type/><Code/>
    /// <Message/></Error><RequestId/></ErrorResponse>`, `text/xml`.
    Query {
        /// The service's XML namespace (`https://iam.amazonaws.com/doc/2010-05-08/`).
        namespace: &'static str,
    },
    /// The JSON protocols: `{"__type": code, "message": …}` and `x-amzn-ErrorType`.
    Json,
}

/// IAM's Query namespace.
pub const IAM_NAMESPACE: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
/// STS's Query namespace.
pub const STS_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// An error of `code` with `message`, as `format` writes it, with AWS's status and the
/// request id in `x-amzn-RequestId`. A receiver fault is answered without its detail (the
/// caller logs it); every message is bounded.
pub fn aws_error(code: AwsCode, message: &str, request_id: &str, format: ErrorFormat) -> Response {
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let message = if code.fault() == crate::error::Fault::Receiver {
        std::borrow::Cow::Borrowed(
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    } else {
        crate::error::bounded_message(message)
    };
    let (content_type, body) = match format {
        ErrorFormat::Query { namespace } => (
            "text/xml",
            format!(
                "<ErrorResponse xmlns=\"{namespace}\">\n  <Error>\n    <Type>{}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
                code.fault().as_str(),
                code.as_str(),
                xml_escape(&message),
                xml_escape(request_id),
            ),
        ),
        ErrorFormat::Json => (
            "application/x-amz-json-1.1",
            serde_json::json!({"__type": code.as_str(), "message": message}).to_string(),
        ),
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    if format == ErrorFormat::Json {
        headers.insert("x-amzn-errortype", HeaderValue::from_static(code.as_str()));
    }
    response
}

/// Escapes text for XML character data and attribute values.
pub fn xml_escape(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn query_errors_are_aws_error_responses() {
        let response = aws_error(
            AwsCode::NoSuchEntity,
            "The user with name <bob> cannot be found.",
            "req-1",
            ErrorFormat::Query {
                namespace: IAM_NAMESPACE,
            },
        );
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()["x-amzn-requestid"], "req-1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/xml");
        let text = body(response).await;
        assert_eq!(
            text,
            "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\n  <Error>\n    <Type>Sender</Type>\n    <Code>NoSuchEntity</Code>\n    <Message>The user with name &lt;bob&gt; cannot be found.</Message>\n  </Error>\n  <RequestId>req-1</RequestId>\n</ErrorResponse>\n"
        );
    }

    #[tokio::test]
    async fn json_errors_carry_the_type_and_receiver_faults_no_detail() {
        let response = aws_error(
            AwsCode::ServiceFailure,
            "disk /var/lib/iamlet is full",
            "req-2",
            ErrorFormat::Json,
        );
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()["x-amzn-errortype"], "ServiceFailure");
        let value: serde_json::Value = serde_json::from_str(&body(response).await).unwrap();
        assert_eq!(value["__type"], "ServiceFailure");
        assert!(!value["message"].as_str().unwrap().contains("/var/lib"));
    }

    #[tokio::test]
    async fn messages_are_bounded() {
        let response = aws_error(
            AwsCode::ValidationError,
            &"x".repeat(100_000),
            "req-3",
            ErrorFormat::Json,
        );
        assert!(body(response).await.len() < MAX_MESSAGE_CHARS + 100);
    }
}
