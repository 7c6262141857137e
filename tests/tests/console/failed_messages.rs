//! Console browser tests: failed_messages (being built).
