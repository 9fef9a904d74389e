//! Minimized counterexamples found by the properties, kept as plain tests.
