//! The IAM operations on a tenant.
