//! An action's JSON result as the XML of IAM's Query protocol (botocore's `query` parser):
//! members as elements in the result's order, lists as `<member>` elements, booleans and
//! numbers as text, policy documents URL-encoded and blobs base64-encoded as AWS sends them.

use base64::Engine as _;
use serde_json::Value;

use crate::http::xml_escape;

/// Members that hold a policy document: AWS returns them URL-encoded (RFC 3986), and
/// botocore decodes them.
const DOCUMENTS: &[&str] = &["AssumeRolePolicyDocument", "Document", "PolicyDocument"];

/// Members IAM's model types as blobs: base64 on the wire.
const BLOBS: &[&str] = &["Base32StringSeed", "QRCodePNG"];

/// Members IAM's model types as maps: `<entry><key>…</key><value>…</value></entry>` on the
/// wire, as botocore's query parser reads them (`GetAccountSummary`'s `SummaryMap`, the
/// simulator's `EvalDecisionDetails`).
const MAPS: &[&str] = &["SummaryMap", "EvalDecisionDetails"];

/// Actions whose output shape in IAM's model has no members: AWS sends an empty result
/// element, and botocore's parser looks for it.
const EMPTY_RESULTS: &[&str] = &["UpdateRole"];

/// The content of `<{Action}Result>` for `action`'s `result`, or `None` when the action has
/// no output (an empty object: AWS then sends no result element).
pub(super) fn result(action: &str, result: &Value) -> Option<String> {
    let Some(map) = result.as_object().filter(|m| !m.is_empty()) else {
        return EMPTY_RESULTS.contains(&action).then(String::new);
    };
    let mut out = String::new();
    for (name, value) in map {
        element(&mut out, name, value);
    }
    Some(out)
}

fn element(out: &mut String, name: &str, value: &Value) {
    let text = |out: &mut String, s: &str| {
        if DOCUMENTS.contains(&name) {
            out.push_str(&uri_encode(s));
        } else if BLOBS.contains(&name) {
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(s.as_bytes()));
        } else {
            out.push_str(&xml_escape(s));
        }
    };
    match value {
        Value::Null => return,
        Value::Array(items) => {
            open(out, name);
            for item in items {
                element(out, "member", item);
            }
        }
        Value::Object(map) if MAPS.contains(&name) => {
            open(out, name);
            for (key, v) in map {
                open(out, "entry");
                element(out, "key", &Value::String(key.clone()));
                element(out, "value", v);
                out.push_str("</entry>");
            }
        }
        Value::Object(map) => {
            open(out, name);
            for (child, v) in map {
                element(out, child, v);
            }
        }
        Value::String(s) => {
            open(out, name);
            text(out, s);
        }
        Value::Bool(b) => {
            open(out, name);
            out.push_str(if *b { "true" } else { "false" });
        }
        Value::Number(n) => {
            open(out, name);
            out.push_str(&n.to_string());
        }
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn open(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
}

/// `text` percent-encoded as RFC 3986 (every byte but the unreserved characters), as AWS
/// encodes policy documents in IAM's responses.
pub(super) fn uri_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push_str(&format!("{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn members_lists_and_scalars() {
        let got = result(
            "ListUsers",
            &json!({
                "Users": [{"UserName": "a<b", "Tags": [{"Key": "k", "Value": "v"}]}],
                "IsTruncated": true,
                "Count": 3,
                "Marker": "m",
            }),
        )
        .unwrap();
        assert_eq!(
            got,
            "<Users><member><UserName>a&lt;b</UserName><Tags><member><Key>k</Key><Value>v</Value></member></Tags></member></Users><IsTruncated>true</IsTruncated><Count>3</Count><Marker>m</Marker>"
        );
    }

    #[test]
    fn maps_are_entries_of_key_and_value() {
        let got = result(
            "SimulateCustomPolicy",
            &json!({"EvaluationResults": [{"EvalDecisionDetails": {"IAM Policy": "allowed"}}]}),
        )
        .unwrap();
        assert_eq!(
            got,
            "<EvaluationResults><member><EvalDecisionDetails><entry><key>IAM Policy</key><value>allowed</value></entry></EvalDecisionDetails></member></EvaluationResults>"
        );
    }

    #[test]
    fn documents_are_url_encoded_and_blobs_base64() {
        let got = result(
            "CreateRole",
            &json!({
                "Role": {"AssumeRolePolicyDocument": "{\"a\": \"b/c\"}"},
                "VirtualMFADevice": {"Base32StringSeed": "ABC"},
            }),
        )
        .unwrap();
        assert!(
            got.contains("<AssumeRolePolicyDocument>%7B%22a%22%3A%20%22b%2Fc%22%7D</AssumeRolePolicyDocument>"),
            "{got}"
        );
        assert!(
            got.contains("<Base32StringSeed>QUJD</Base32StringSeed>"),
            "{got}"
        );
    }

    #[test]
    fn maps_are_entries_of_keys_and_values() {
        let got = result(
            "GetAccountSummary",
            &json!({"SummaryMap": {"Users": 2, "UsersQuota": 5000}}),
        )
        .unwrap();
        assert_eq!(
            got,
            "<SummaryMap><entry><key>Users</key><value>2</value></entry><entry><key>UsersQuota</key><value>5000</value></entry></SummaryMap>"
        );
    }

    #[test]
    fn no_output_no_result() {
        assert_eq!(result("DeleteUser", &json!({})), None);
        assert_eq!(result("DeleteUser", &Value::Null), None);
        assert_eq!(result("UpdateRole", &json!({})), Some(String::new()));
    }
}
