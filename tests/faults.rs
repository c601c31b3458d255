//! Faults: concurrent writers with agents, crashes at chosen points, a database that goes away,
//! a full disk. Each module reproduces one fault from issue #15 against the real server.

mod common;

#[path = "faults/agent_vanishes.rs"]
mod agent_vanishes;
#[path = "faults/concurrent_writers.rs"]
mod concurrent_writers;
#[path = "faults/crash.rs"]
mod crash;
#[path = "faults/db_down.rs"]
mod db_down;
#[path = "faults/disk_full.rs"]
mod disk_full;
