//! Console browser tests: accounts (being built).
