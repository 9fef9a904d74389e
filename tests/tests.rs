//! The integration test binary: one `mod` per area.
