//! End-to-end tests of the simulator over real HTTP (one test binary, one link step).

mod common;
mod errors;
mod faults;
mod limits;
mod llm;
mod media;
mod templates;
mod webhooks;
