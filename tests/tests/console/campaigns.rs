//! Console browser tests: campaigns (being built).
