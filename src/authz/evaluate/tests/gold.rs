//! IAM-SEMANTICS §6.2 worked cases.
