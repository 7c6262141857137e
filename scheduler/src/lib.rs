//! The `scheduler` process.
