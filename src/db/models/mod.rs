//! Row structs and the queries that belong to them, one file per entity. Every query takes
//! `&mut DbConn` and uses only DSL that compiles for both backends.

#[macro_use]
mod enums;
mod api_token;
mod camera;
mod command;
mod demo;
mod farm;
mod file;
mod ids;
mod job;
mod organization;
mod printer;
mod printer_type;
mod project;
mod quote;
pub mod read;
mod registration;
mod session;
mod share;
pub mod signed;
mod slice_job;
mod upload_id;
mod user;
mod workgroup;

pub use api_token::*;
pub use camera::*;
pub use command::*;
pub use demo::*;
pub use enums::*;
pub use farm::*;
pub use file::*;
pub use ids::*;
pub use job::*;
pub use organization::*;
pub use printer::*;
pub use printer_type::*;
pub use project::*;
pub use quote::*;
pub use registration::*;
pub use session::*;
pub use share::*;
pub use slice_job::*;
pub use upload_id::*;
pub use user::*;
pub use workgroup::*;

use crate::db::stamp::{MaybeStamp, Stamp};

type QResult<T> = Result<T, diesel::result::Error>;
