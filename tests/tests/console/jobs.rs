//! Console browser tests: jobs (being built).
