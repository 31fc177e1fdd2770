//! Helpers for integration tests: starting and stopping the local peer.
