//! Customer-experience automation around the inbox: business hours, the off-hours and
//! maintenance replies (ARCHITECTURE.md, "Flows: Inbound webhooks"). Routing, teams and
//! idle-agent detection join here.

pub mod auto_reply;
pub mod consent;
pub mod hours;
pub mod idle;
pub mod lifecycle;
pub mod maintenance;
pub mod presence;
pub mod reroute;
pub mod routing;
pub mod rule_conflicts;
pub mod settings;
