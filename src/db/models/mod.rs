//! Row structs and the queries that belong to them, one file per entity. Every query takes
//! `&mut DbConn` and uses only DSL that compiles for both backends.

#[macro_use]
mod enums;
mod api_token;
mod organization;
mod user;
mod session;
mod printer_type;
mod workgroup;
mod project;
mod file;
mod printer;
mod registration;
mod share;
mod command;
mod camera;
mod job;
mod slice_job;
mod quote;
pub mod read;
mod upload_id;

pub use api_token::*;
pub use enums::*;
pub use organization::*;
pub use user::*;
pub use session::*;
pub use printer_type::*;
pub use workgroup::*;
pub use project::*;
pub use file::*;
pub use printer::*;
pub use registration::*;
pub use share::*;
pub use command::*;
pub use camera::*;
pub use job::*;
pub use slice_job::*;
pub use quote::*;
pub use upload_id::*;

type QResult<T> = Result<T, diesel::result::Error>;
