//! Public clients, re-enacted from their source: each module sends exactly the requests its
//! client sends (method, path, body encoding, field names and order, multipart layout) and
//! applies the client's own parsing and success rules, so a change that would break the real
//! client fails here. Each module names the source file and commit it follows.

mod orcaslicer;

mod cura;

mod cloudslicer;

mod duke;

mod berkeley;
mod georgia_tech;
