//! Tests of the policy simulator.
