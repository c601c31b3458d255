//! The integration tests: one binary (linking the crate once) with a module per area. Each test
//! drives a real `printfarm` server over HTTP, on SQLite and on Postgres (`common`), and the
//! agent tests talk to real printer peers (`peers`, scripts in `tests/peers/`).
//!
//! Run one area with `cargo test --test integration <module>::`, e.g. `clients::`.

#[macro_use]
mod common;
mod peers;

mod agent_download;
mod agent_drivers;
mod agent_e2e;
mod apiglobal_files;
mod apiglobal_google;
mod apiglobal_orgs;
mod apiglobal_sessions;
mod backup;
mod clients;
mod console;
mod db_schema;
mod demo;
mod deploy;
mod farm;
mod faults;
mod hostile_input;
mod jobs;
mod openapi;
mod printers;
mod reports;
mod security_access;
mod slicing;
mod storage_s3;
mod upgrade;
mod v1;
mod wire_snapshots;
