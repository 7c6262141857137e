//! The operations console in a real headless Chromium, over WebDriver: each module drives one
//! area of `/console` as a person would and checks what the platform did (rows, the
//! simulator). Screenshots land in `target/console-screenshots/`.

mod accounts;
mod browser;
mod campaigns;
mod failed_messages;
mod jobs;
mod knowledge;
mod overview;
mod session;
