//! `iamlet admin export-trail`: a tenant's management events in CloudTrail's record format,
//! one JSON record a line, oldest first, read page by page through `LookupEvents`.
//!
//! The export rides on `LookupEvents` rather than an action of its own: one reading of the
//! history (the same records, the same `cloudtrail:LookupEvents` authorization, the same
//! bounds), and nothing an exported file holds that a lookup would not show.

use serde_json::{Map, Value};
use tonic::transport::Channel;

use super::{service_error, signed, AdminCliError};
use crate::client::Profile;
use crate::proto::v1 as pb;

/// Every event of `tenant` in the time range, as JSON lines, oldest first.
pub(super) async fn export_trail(
    client: &mut pb::admin_client::AdminClient<Channel>,
    credentials: Option<&Profile>,
    tenant: String,
    start_time: Option<String>,
    end_time: Option<String>,
) -> Result<String, AdminCliError> {
    let mut parameters = Map::new();
    parameters.insert(
        "MaxResults".into(),
        Value::from(crate::control_plane::MAX_LOOKUP_RESULTS),
    );
    if let Some(start) = start_time {
        parameters.insert("StartTime".into(), Value::String(start));
    }
    if let Some(end) = end_time {
        parameters.insert("EndTime".into(), Value::String(end));
    }
    let mut lines = Vec::new();
    loop {
        let response = client
            .call(signed(
                pb::CallRequest {
                    tenant: tenant.clone(),
                    action: "LookupEvents".into(),
                    parameters_json: Value::Object(parameters.clone()).to_string(),
                },
                "Call",
                credentials,
            ))
            .await
            .map_err(|s| service_error("LookupEvents", &s))?
            .into_inner();
        let page: Value = serde_json::from_str(&response.result_json).map_err(|e| {
            AdminCliError::Usage(format!("LookupEvents answered what is not JSON: {e}"))
        })?;
        lines.extend(
            page.get("Events")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| e.get("CloudTrailEvent").and_then(Value::as_str))
                .map(str::to_owned),
        );
        match page.get("NextToken").and_then(Value::as_str) {
            Some(next) => {
                parameters.insert("NextToken".into(), Value::String(next.to_owned()));
            }
            None => break,
        }
    }
    // Pages are newest first; a trail file reads oldest first.
    lines.reverse();
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    Ok(out)
}
