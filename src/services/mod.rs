//! Domain rules. Services know nothing of HTTP; they take a connection (or the pool when a
//! call must not hold a connection during slow work such as password hashing).

pub mod agent;
pub mod api_tokens;
pub mod auth;
pub mod backup;
pub mod bootstrap;
pub mod commands;
pub mod demo;
pub mod farm;
pub mod files;
pub mod google;
pub mod job_states;
pub mod jobs;
pub mod login_tokens;
pub mod maintenance;
pub mod orgs;
pub mod printer_types;
pub mod printers;
pub mod quickprint;
pub mod quotes;
pub mod reports;
pub mod sessions;
pub mod slicing;
pub mod upload_ids;
