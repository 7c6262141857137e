//! Console browser tests: knowledge (being built).
