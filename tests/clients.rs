//! Public clients, re-enacted from their source: each module sends exactly the requests its
//! client sends (method, path, body encoding, field names and order, multipart layout) and
//! applies the client's own parsing and success rules, so a change that would break the real
//! client fails here. Each module names the source file and commit it follows.

mod common;

#[path = "clients/orcaslicer.rs"]
mod orcaslicer;

#[path = "clients/cura.rs"]
mod cura;

#[path = "clients/cloudslicer.rs"]
mod cloudslicer;

#[path = "clients/duke.rs"]
mod duke;

#[path = "clients/berkeley.rs"]
mod berkeley;
#[path = "clients/georgia_tech.rs"]
mod georgia_tech;
