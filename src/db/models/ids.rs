//! Row ids as their own types, so that passing a job id where a printer id belongs does not
//! compile. Stored as BIGINT and serialised as the bare number, exactly as before. They have
//! no OpenAPI schema of their own: a documented field says `#[schema(value_type = i64)]`, so
//! the document keeps showing a plain integer.

macro_rules! id_type {
    ($($(#[$m:meta])* $name:ident,)+) => {$(
        $(#[$m])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            diesel_derive_newtype::DieselNewType,
            serde::Serialize,
            serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }
    )+};
}

id_type! {
    PrinterId,
    JobId,
    FileId,
    UserId,
    OrgId,
}
