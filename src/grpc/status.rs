//! The one place where errors become `tonic::Status`: the gRPC code follows from the AWS code,
//! and the AWS code travels as `ErrorInfo.reason`, so clients read AWS's code, not a guess.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::AwsCode;

/// The service an error is reported for: `ErrorInfo.domain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDomain {
    /// `iamlet.v1.Admin`: IAM's errors.
    Iam,
    /// `iamlet.v1.SecurityTokenService`: STS's errors.
    Sts,
    /// `iamlet.v1.Authorizer`: decisions.
    Authorizer,
}

impl ErrorDomain {
    fn as_str(self) -> &'static str {
        match self {
            Self::Iam => "iam.amazonaws.com",
            Self::Sts => "sts.amazonaws.com",
            Self::Authorizer => "authorizer.iamlet.dev",
        }
    }
}

/// The gRPC code for an AWS code: every code is named, so a new one cannot fall through to a
/// default unnoticed.
pub fn grpc_code(code: AwsCode) -> Code {
    match code {
        AwsCode::NoSuchEntity | AwsCode::NoSuchTenant | AwsCode::ResourceNotFoundException => {
            Code::NotFound
        }
        AwsCode::EntityAlreadyExists
        | AwsCode::ResourceInUseException
        | AwsCode::ConflictException => Code::AlreadyExists,
        AwsCode::LimitExceeded | AwsCode::Throttling => Code::ResourceExhausted,
        AwsCode::DeleteConflict | AwsCode::ReportNotPresent | AwsCode::ReportExpired => {
            Code::FailedPrecondition
        }
        AwsCode::UnsupportedOperation => Code::Unimplemented,
        AwsCode::ConcurrentModification => Code::Aborted,
        AwsCode::InvalidAuthenticationCode | AwsCode::AccessDenied => Code::PermissionDenied,
        AwsCode::MissingAuthenticationToken
        | AwsCode::InvalidClientTokenId
        | AwsCode::SignatureDoesNotMatch
        | AwsCode::IncompleteSignature
        | AwsCode::ExpiredToken
        | AwsCode::InvalidIdentityToken
        | AwsCode::ExpiredTokenException => Code::Unauthenticated,
        AwsCode::ServiceFailure | AwsCode::InternalFailure | AwsCode::PolicyEvaluation => {
            Code::Internal
        }
        AwsCode::VersionNotReached | AwsCode::StalePolicy | AwsCode::ServiceUnavailable => {
            Code::Unavailable
        }
        AwsCode::MalformedPolicyDocument
        | AwsCode::InvalidInput
        | AwsCode::ValidationError
        | AwsCode::PasswordPolicyViolation
        | AwsCode::UnmodifiableEntity
        | AwsCode::InvalidUserType
        | AwsCode::PackedPolicyTooLarge
        | AwsCode::InvalidAction
        | AwsCode::MissingParameter
        | AwsCode::InvalidParameterValue
        | AwsCode::MalformedTenantSpec
        | AwsCode::InvalidTenantSpec
        | AwsCode::MalformedQueryString
        | AwsCode::UnsupportedMediaType
        | AwsCode::RequestEntityTooLarge
        | AwsCode::InvalidParameterException
        | AwsCode::InvalidLookupAttributesException
        | AwsCode::InvalidTimeRangeException
        | AwsCode::InvalidMaxResultsException
        | AwsCode::InvalidNextTokenException
        | AwsCode::ValidationException => Code::InvalidArgument,
    }
}

/// A status for an error of `code` with `message`, the AWS code in `ErrorInfo`. A receiver
/// fault is logged with its detail and answered without it; every message is bounded, so an
/// echo of oversized input never exceeds the peer's header limit.
pub fn to_status(code: AwsCode, message: &str, domain: ErrorDomain) -> Status {
    to_status_with_field(code, message, domain, None)
}

/// [`to_status`] naming the request field at fault, as a `BadRequest` field violation beside
/// the `ErrorInfo`.
pub fn to_status_with_field(
    code: AwsCode,
    message: &str,
    domain: ErrorDomain,
    field: Option<(&str, &str)>,
) -> Status {
    let grpc = grpc_code(code);
    let message = if grpc == Code::Internal {
        tracing::error!(code = code.as_str(), detail = %message, "internal error");
        "The request processing has failed because of an unknown error, exception or failure."
            .into()
    } else {
        echo_message(message)
    };
    let mut details = ErrorDetails::new();
    details.set_error_info(code.as_str(), domain.as_str(), HashMap::new());
    if let Some((field, why)) = field {
        details.add_bad_request_violation(echo_message(field), echo_message(why));
    }
    Status::with_error_details(grpc, message, details)
}

fn echo_message(message: &str) -> String {
    crate::error::bounded_message(message).into_owned()
}

/// A local-API (Authorizer, STS) error as a status.
pub fn api_status(error: &crate::sidecar::ApiError) -> Status {
    use crate::sidecar::ApiError;
    let domain = match error {
        ApiError::Sts(_) => ErrorDomain::Sts,
        _ => ErrorDomain::Authorizer,
    };
    let field = match error {
        ApiError::InvalidArgument { field, reason } => Some((field.as_str(), reason.as_str())),
        _ => None,
    };
    to_status_with_field(error.code(), &error.to_string(), domain, field)
}

/// An admin API error as a status.
pub fn admin_status(error: &crate::control_plane::AdminError) -> Status {
    use crate::control_plane::AdminError;
    let field = match error {
        AdminError::InvalidParameterValue { name, reason } => {
            Some((name.as_str(), reason.as_str()))
        }
        AdminError::MissingParameter(name) => Some((name.as_str(), "missing")),
        _ => None,
    };
    to_status_with_field(error.code(), &error.to_string(), ErrorDomain::Iam, field)
}

/// The AWS error code a status carries, if it carries one.
pub fn aws_error_code(status: &Status) -> Option<String> {
    status.get_details_error_info().map(|info| info.reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::MAX_MESSAGE_CHARS;

    #[test]
    fn statuses_carry_the_aws_code_and_a_bounded_message() {
        let status = to_status(
            AwsCode::NoSuchEntity,
            &"x".repeat(100_000),
            ErrorDomain::Iam,
        );
        assert_eq!(status.code(), Code::NotFound);
        assert!(status.message().len() < MAX_MESSAGE_CHARS + 32);
        assert_eq!(aws_error_code(&status).as_deref(), Some("NoSuchEntity"));
    }

    #[test]
    fn retryable_codes_are_unavailable_and_unknown_tenants_not_found() {
        for code in [
            AwsCode::StalePolicy,
            AwsCode::ServiceUnavailable,
            AwsCode::VersionNotReached,
        ] {
            assert_eq!(grpc_code(code), Code::Unavailable, "{code}");
        }
        assert_eq!(grpc_code(AwsCode::NoSuchTenant), Code::NotFound);
    }

    #[test]
    fn invalid_arguments_name_their_field() {
        let status = api_status(&crate::sidecar::ApiError::invalid("resource", "missing"));
        assert_eq!(status.code(), Code::InvalidArgument);
        let violations = status.get_details_bad_request().unwrap().field_violations;
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "resource");
        assert_eq!(violations[0].description, "missing");
        assert_eq!(aws_error_code(&status).as_deref(), Some("ValidationError"));
    }

    #[test]
    fn internal_errors_hide_their_detail() {
        let status = to_status(
            AwsCode::ServiceFailure,
            "disk /var/lib/x is full",
            ErrorDomain::Iam,
        );
        assert_eq!(status.code(), Code::Internal);
        assert!(
            !status.message().contains("/var/lib"),
            "{}",
            status.message()
        );
    }
}
