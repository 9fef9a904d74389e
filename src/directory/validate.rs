//! IAM's rules for names, paths, tags and other parameters.
