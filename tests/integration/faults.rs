//! Faults: concurrent writers with agents, crashes at chosen points, a database that goes away,
//! a full disk. Each module reproduces one fault from issue #15 against the real server.

mod agent_vanishes;
mod busy;
mod concurrent_writers;
mod crash;
mod db_down;
mod disk_full;
