//! Decoding before the admin API, and the counters on the metrics page.

use axum::http::{Method, Request};

use super::*;

fn parts(method: Method, uri: &str) -> axum::http::request::Parts {
    let (parts, ()) = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(())
        .unwrap()
        .into_parts();
    parts
}

fn refusal(method: Method, uri: &str, body: &str) -> (String, AwsCode, String) {
    match decode(&parts(method, uri), body.as_bytes()) {
        Ok((_, action, params)) => panic!("{action} {params} was accepted"),
        Err((action, r)) => (action, r.code, r.message),
    }
}

#[test]
fn a_form_becomes_the_action_and_its_parameters() {
    let (_, action, params) = decode(
        &parts(Method::POST, "/"),
        b"Action=ListUsers&Version=2010-05-08&MaxItems=2&PathPrefix=%2Fteam%2F",
    )
    .unwrap();
    assert_eq!(action, "ListUsers");
    assert_eq!(
        params,
        serde_json::json!({"MaxItems": 2, "PathPrefix": "/team/"})
    );
    // GET carries the form in the query string.
    let (_, action, params) =
        decode(&parts(Method::GET, "/?Action=GetUser&UserName=alice"), b"").unwrap();
    assert_eq!(action, "GetUser");
    assert_eq!(params, serde_json::json!({"UserName": "alice"}));
}

#[test]
fn bad_forms_are_refused_with_aws_codes() {
    let (_, code, message) = refusal(Method::POST, "/", "Version=2010-05-08");
    assert_eq!(code, AwsCode::MissingParameter);
    assert!(message.contains("Action"), "{message}");
    let (action, code, message) = refusal(Method::POST, "/", "Action=ListUsers&Version=2011-06-15");
    assert_eq!(
        (action.as_str(), code),
        ("ListUsers", AwsCode::InvalidAction)
    );
    assert_eq!(
        message,
        "Could not find operation ListUsers for version 2011-06-15"
    );
    let (_, code, _) = refusal(Method::POST, "/", "Action=ListUsers&Action=GetUser");
    assert_eq!(code, AwsCode::InvalidParameterValue);
    let (_, code, _) = refusal(Method::POST, "/", "Action=ListUsers&UserName=%zz");
    assert_eq!(code, AwsCode::MalformedQueryString);
    let (_, code, message) = refusal(Method::POST, "/", "Action=ListUsers&MaxItems=lots");
    assert_eq!(code, AwsCode::ValidationError);
    assert!(message.contains("'maxItems'"), "{message}");
}

#[test]
fn counters_render_by_code() {
    let counters = Counters::default();
    counters.count("ValidationError");
    counters.count("OK");
    counters.count("OK");
    let mut page = String::new();
    counters.render(&mut page);
    assert!(
        page.contains("# TYPE iamlet_iam_query_calls_total counter"),
        "{page}"
    );
    assert!(
        page.contains("iamlet_iam_query_calls_total{code=\"ValidationError\"} 1"),
        "{page}"
    );
    assert!(
        page.contains("iamlet_iam_query_calls_total{code=\"OK\"} 2"),
        "{page}"
    );
}
