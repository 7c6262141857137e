//! The end-to-end suite, one binary: each module is one area of the platform. One binary links
//! once instead of once per area, which keeps the build fast and small on disk.

mod admin_jobs;
mod admin_orgs;
mod api_keys;
mod auth;
mod bot_classify;
mod bot_config;
mod bot_media;
mod bot_metrics;
mod bot_portability;
mod bot_reply;
mod campaigns;
mod consent;
mod conversation_lifecycle;
mod cx_hours;
mod cx_scheduler;
mod edge;
mod events;
mod inbox;
mod knowledge_base;
mod llm_providers;
mod media;
mod outbound;
mod outbound_scale;
mod platform;
mod process;
mod quick_replies;
mod readme;
mod reroute;
mod routing;
mod tags;
mod templates;
mod users;
mod webhooks;
mod whatsapp_accounts;
