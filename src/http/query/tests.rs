use super::*;

fn post(body: &str) -> Result<QueryRequest, QueryError> {
    QueryRequest::try_from_parts(
        &Method::POST,
        "",
        Some("application/x-www-form-urlencoded; charset=utf-8"),
        body.as_bytes(),
    )
}

fn get(query: &str) -> Result<QueryRequest, QueryError> {
    QueryRequest::try_from_parts(&Method::GET, query, None, b"")
}

#[test]
fn post_bodies_and_get_queries_decode_alike() {
    let body = "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr";
    for request in [post(body).unwrap(), get(body).unwrap()] {
        assert_eq!(request.action(), Some("AssumeRole"));
        assert_eq!(request.version(), Some("2011-06-15"));
        assert_eq!(request.get("RoleArn"), Some("arn:aws:iam::1:role/r"));
        assert_eq!(request.get("Nope"), None);
    }
}

#[test]
fn a_get_ignores_any_body_and_a_post_merges_its_query() {
    let request =
        QueryRequest::try_from_parts(&Method::GET, "Action=A", None, b"Version=1").unwrap();
    assert_eq!(request.version(), None);
    let request = QueryRequest::try_from_parts(
        &Method::POST,
        "Action=A",
        Some("application/x-www-form-urlencoded"),
        b"Version=1",
    )
    .unwrap();
    assert_eq!(
        request.iter().collect::<Vec<_>>(),
        [("Action", "A"), ("Version", "1")]
    );
    // A name in both the query and the body is repeated.
    let err = QueryRequest::try_from_parts(&Method::POST, "Action=A", None, b"Action=B");
    assert_eq!(err.unwrap_err(), QueryError::Repeated("Action".into()));
}

#[test]
fn plus_is_a_space_and_percent_2b_a_plus() {
    let request = post("A=a+b&B=a%20b&C=a%2Bb&D=%E2%9C%93").unwrap();
    assert_eq!(request.get("A"), Some("a b"));
    assert_eq!(request.get("B"), Some("a b"));
    assert_eq!(request.get("C"), Some("a+b"));
    assert_eq!(request.get("D"), Some("\u{2713}"));
}

#[test]
fn empty_values_are_given_but_not_enough_for_require() {
    let request = post("A=&B&&C=c&").unwrap();
    assert_eq!(request.get("A"), Some(""));
    assert_eq!(request.get("B"), Some(""));
    assert_eq!(request.require("C"), Ok("c"));
    assert_eq!(request.require("A"), Err(QueryError::Missing("A".into())));
    let err = request.require("RoleArn").unwrap_err();
    assert_eq!(err.code(), AwsCode::MissingParameter);
    assert_eq!(err.parameter(), Some("RoleArn"));
    assert_eq!(
        err.to_string(),
        "The request must contain the parameter RoleArn."
    );
}

#[test]
fn bad_encodings_are_malformed_query_strings() {
    for body in ["A=%", "A=%4", "A=%zz", "A=%C3%28", "%ZZ=a", "=a"] {
        let err = post(body).unwrap_err();
        assert_eq!(err.code(), AwsCode::MalformedQueryString, "{body}");
        assert_eq!(err.code().http_status(), 400, "{body}");
    }
}

#[test]
fn repeated_parameters_are_refused() {
    let err = post("A=1&B=2&A=1").unwrap_err();
    assert_eq!(err, QueryError::Repeated("A".into()));
    assert_eq!(err.code(), AwsCode::InvalidParameterValue);
    // Spelled differently on the wire, the same after decoding.
    assert!(post("A%41=1&AA=2").is_err());
}

#[test]
fn a_post_of_another_content_type_is_refused() {
    let err = QueryRequest::try_from_parts(
        &Method::POST,
        "",
        Some("application/json"),
        br#"{"Action":"GetCallerIdentity"}"#,
    )
    .unwrap_err();
    assert_eq!(err.code(), AwsCode::UnsupportedMediaType);
    assert_eq!(err.code().http_status(), 415);
    // An empty body has no type to check.
    assert!(
        QueryRequest::try_from_parts(&Method::POST, "Action=A", Some("text/plain"), b"").is_ok()
    );
}

#[test]
fn member_lists_come_in_index_order_whatever_the_wire_order() {
    let request = post("K.member.3=c&K.member.1=a&K.member.10=j&K.member.2=b&K.member.4=d&K.member.5=e&K.member.6=f&K.member.7=g&K.member.8=h&K.member.9=i").unwrap();
    assert_eq!(
        request.list("K").unwrap(),
        ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
    );
    assert!(request.list("Other").unwrap().is_empty());
    // botocore sends an empty list as `Name=`.
    assert!(post("K=").unwrap().list("K").unwrap().is_empty());
    assert!(post("K=x").unwrap().list("K").is_err());
    // A parameter that merely starts with the name is another parameter.
    assert!(post("Keys=1").unwrap().list("K").unwrap().is_empty());
}

#[test]
fn member_lists_with_gaps_or_bad_indexes_are_refused() {
    for body in [
        "K.member.1=a&K.member.3=c",
        "K.member.2=b",
        "K.member.0=a",
        "K.member.01=a",
        "K.member.x=a",
        "K.member.=a",
        "K.member.1.F=a",
        "K.1=a",
        "K.member.9999999=a",
    ] {
        let err = post(body).unwrap().list("K").unwrap_err();
        assert_eq!(err.code(), AwsCode::InvalidParameterValue, "{body}");
        assert!(err.parameter().unwrap().starts_with('K'), "{body}");
    }
}

#[test]
fn structures_group_fields_by_index() {
    let request = post(
        "Tags.member.2.Value=v2&Tags.member.1.Key=k1&Tags.member.2.Key=k2&Tags.member.1.Value=v1&PolicyArns.member.1.arn=arn%3Ax",
    )
    .unwrap();
    assert_eq!(
        request.structs("Tags").unwrap(),
        [
            vec![("Key", "k1"), ("Value", "v1")],
            vec![("Value", "v2"), ("Key", "k2")]
        ]
    );
    assert_eq!(
        request.structs("PolicyArns").unwrap(),
        [vec![("arn", "arn:x")]]
    );
    assert!(post("Tags=").unwrap().structs("Tags").unwrap().is_empty());
    for body in ["Tags.member.1=a", "Tags.member.2.Key=a", "Tags.member.1.=a"] {
        assert!(post(body).unwrap().structs("Tags").is_err(), "{body}");
    }
}

#[test]
fn debug_never_shows_values() {
    let request = post("WebIdentityToken=secret-token").unwrap();
    let shown = format!("{request:?}");
    assert!(shown.contains("WebIdentityToken"));
    assert!(!shown.contains("secret-token"));
}

#[test]
fn request_ids_are_uuid_v4_shaped_and_distinct() {
    let a = new_request_id();
    let b = new_request_id();
    assert_ne!(a, b);
    let groups: Vec<usize> = a.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{a}");
    assert_eq!(a.get(14..15), Some("4"), "{a}");
    assert!(matches!(a.get(19..20), Some("8" | "9" | "a" | "b")), "{a}");
}

#[test]
fn signed_parts_hash_the_body_and_presigned_urls_sign_unsigned_payload() {
    let request = axum::http::Request::post("/?x=1")
        .header("x-amz-content-sha256", "forged")
        .body(())
        .unwrap();
    let (parts, ()) = request.into_parts();
    let signed = signed_request_parts(&parts, b"Action=GetCallerIdentity");
    let view = signed.as_signed_request();
    assert_eq!(view.method, "POST");
    assert_eq!(view.path, "/");
    assert_eq!(view.query, "x=1");
    assert_eq!(
        view.payload_sha256,
        Some(hex_sha256(b"Action=GetCallerIdentity").as_str())
    );
    assert!(view
        .headers
        .iter()
        .any(|(n, v)| n == "x-amz-content-sha256" && v == "forged"));
    assert_eq!(
        hex_sha256(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );

    let presigned = axum::http::Request::get("/?Action=GetCallerIdentity&X-Amz-Signature=ab")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let signed = signed_request_parts(&presigned, b"");
    assert_eq!(
        signed.as_signed_request().payload_sha256,
        Some("UNSIGNED-PAYLOAD")
    );
    // A body beside a presigned query is still hashed, so it cannot ride along unsigned.
    let signed = signed_request_parts(&presigned, b"Action=AssumeRole");
    assert_ne!(
        signed.as_signed_request().payload_sha256,
        Some("UNSIGNED-PAYLOAD")
    );
}

async fn text(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn xml_responses_wrap_the_result_and_the_request_id() {
    let mut xml = XmlWriter::new();
    xml.open("Credentials")
        .element("AccessKeyId", "ASIA<&>")
        .optional("Missing", None)
        .close("Credentials")
        .element("PackedPolicySize", "6");
    let response = xml_response(
        "AssumeRole",
        super::super::STS_NAMESPACE,
        "rid-1",
        Some(&xml.finish()),
    );
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-amzn-requestid"], "rid-1");
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/xml");
    assert_eq!(
        text(response).await,
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <AssumeRoleResult>\n    <Credentials>\n      <AccessKeyId>ASIA&lt;&amp;&gt;</AccessKeyId>\n    </Credentials>\n    <PackedPolicySize>6</PackedPolicySize>\n  </AssumeRoleResult>\n  <ResponseMetadata>\n    <RequestId>rid-1</RequestId>\n  </ResponseMetadata>\n</AssumeRoleResponse>\n"
    );
    let empty = xml_response("DeleteUser", super::super::IAM_NAMESPACE, "rid-2", None);
    let body = text(empty).await;
    assert!(!body.contains("DeleteUserResult"), "{body}");
    assert!(body.contains("<RequestId>rid-2</RequestId>"), "{body}");
}

#[test]
fn refusals_are_counted_by_edge_and_code() {
    let before = refusals("query-test", AwsCode::MalformedQueryString);
    count_refusal("query-test", AwsCode::MalformedQueryString);
    count_refusal("query-test", AwsCode::MalformedQueryString);
    assert_eq!(
        refusals("query-test", AwsCode::MalformedQueryString),
        before + 2
    );
    let mut page = String::new();
    render_refusals(&mut page);
    assert!(
        page.contains("# TYPE iamlet_http_refused_total counter"),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "iamlet_http_refused_total{{edge=\"query-test\",code=\"MalformedQueryString\"}} {}",
            before + 2
        )),
        "{page}"
    );
}

#[test]
fn a_body_of_many_members_decodes_in_bounded_time() {
    // About 1 MiB of members (the edge's body limit): grouping must not be quadratic.
    let body: String = (1..=60_000).map(|i| format!("T.member.{i}.K=v&")).collect();
    let started = std::time::Instant::now();
    let request = post(&body).unwrap();
    assert_eq!(request.structs("T").unwrap().len(), 60_000);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
