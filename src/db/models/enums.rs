//! Closed sets of stored values (states, statuses, kinds). Each is one enum with one
//! conversion to and from what the database stores and what the wire shows.

/// An enum stored as text, shown on the wire as the same string.
macro_rules! text_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name { $($(#[$vm])* $var,)+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var,)+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $s,)+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$var),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, DB>,
            ) -> diesel::serialize::Result {
                self.as_str().to_sql(out)
            }
        }

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                let s = String::from_sql(bytes)?;
                Self::parse(&s)
                    .ok_or_else(|| format!("unknown {} {s:?} in the database", stringify!($name)).into())
            }
        }
    };
}

/// An enum stored as an integer, shown on the wire as the same number.
macro_rules! int_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $var:ident = $n:literal,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pub enum $name { $($(#[$vm])* $var,)+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var,)+];

            pub fn id(self) -> i32 {
                match self { $($name::$var => $n,)+ }
            }

            pub fn from_id(n: i32) -> Option<Self> {
                match n { $($n => Some($name::$var),)+ _ => None }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_i32(self.id())
            }
        }

        impl<DB> diesel::serialize::ToSql<diesel::sql_types::Integer, DB> for $name
        where
            DB: diesel::backend::Backend,
            i32: diesel::serialize::ToSql<diesel::sql_types::Integer, DB>,
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, DB>,
            ) -> diesel::serialize::Result {
                // Literals are promoted to statics, so the borrow outlives the output.
                match self { $($name::$var => <i32 as diesel::serialize::ToSql<diesel::sql_types::Integer, DB>>::to_sql(&$n, out),)+ }
            }
        }

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Integer, DB> for $name
        where
            DB: diesel::backend::Backend,
            i32: diesel::deserialize::FromSql<diesel::sql_types::Integer, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                let n = i32::from_sql(bytes)?;
                Self::from_id(n)
                    .ok_or_else(|| format!("unknown {} {n} in the database", stringify!($name)).into())
            }
        }
    };
}

int_enum! {
    /// Job status ids as the Global API numbers them.
    pub enum JobStatus {
        Queued = 11,
        InProgress = 21,
        Failed = 43,
        Aborted = 45,
        Finished = 77,
    }
}

impl JobStatus {
    /// Queued or printing: the job still holds its place or its printer.
    pub fn is_active(self) -> bool {
        matches!(self, JobStatus::Queued | JobStatus::InProgress)
    }
}

text_enum! {
    /// What a file holds.
    pub enum FileKind {
        Gcode = "gcode",
        Stl = "stl",
        ThreeMf = "3mf",
        Obj = "obj",
    }
}

impl FileKind {
    /// A model (mesh) to be sliced, as opposed to G-code to be printed.
    pub fn is_model(self) -> bool {
        !matches!(self, FileKind::Gcode)
    }
}

text_enum! {
    /// Whether a file can be used yet.
    pub enum FileState {
        Ready = "ready",
        /// A slice's output id, handed out before the slice ends.
        Reserved = "reserved",
    }
}

text_enum! {
    /// A slice job's progress: pending → running → done | failed.
    pub enum SliceStatus {
        Pending = "pending",
        Running = "running",
        Done = "done",
        Failed = "failed",
    }
}

text_enum! {
    /// A quote's progress: pending (slicing) → success | error.
    pub enum QuoteStatus {
        Pending = "pending",
        Success = "success",
        Error = "error",
    }
}

text_enum! {
    /// A printer command's delivery: pending → sent → acked | failed.
    pub enum CommandStatus {
        Pending = "pending",
        Sent = "sent",
        Acked = "acked",
        Failed = "failed",
    }
}

/// A printer's state as its agent reports it, stored verbatim: agents and plugins of other
/// makes send words of their own, kept as `Other`. `NotConnected` is what clients are shown
/// when no poll came for a while (never stored by an agent report).
#[derive(Debug, Clone, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum PrinterState {
    Ready,
    Printing,
    Paused,
    Downloading,
    Connecting,
    Error,
    /// An event: the print was cancelled (on the printer or by command).
    Cancel,
    LocalMode,
    BedNotClear,
    NotConnected,
    Other(String),
}

impl PrinterState {
    const KNOWN: &'static [(PrinterState, &'static str)] = &[
        (PrinterState::Ready, "ready"),
        (PrinterState::Printing, "printing"),
        (PrinterState::Paused, "paused"),
        (PrinterState::Downloading, "downloading"),
        (PrinterState::Connecting, "connecting"),
        (PrinterState::Error, "error"),
        (PrinterState::Cancel, "cancel"),
        (PrinterState::LocalMode, "local_mode"),
        (PrinterState::BedNotClear, "bed_not_clear"),
        (PrinterState::NotConnected, "notconnected"),
    ];

    pub fn as_str(&self) -> &str {
        match self {
            PrinterState::Other(s) => s,
            known => Self::KNOWN
                .iter()
                .find(|(k, _)| k == known)
                .map_or("", |(_, s)| s),
        }
    }

    /// Every string is a state: unknown words are kept as they are.
    pub fn parse(s: &str) -> PrinterState {
        Self::KNOWN
            .iter()
            .find(|(_, w)| *w == s)
            .map_or_else(|| PrinterState::Other(s.to_string()), |(k, _)| k.clone())
    }

    /// Working on a job: printing, paused or fetching its G-code.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            PrinterState::Printing | PrinterState::Paused | PrinterState::Downloading
        )
    }
}

impl std::fmt::Display for PrinterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for PrinterState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for PrinterState
where
    DB: diesel::backend::Backend,
    str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
{
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, DB>,
    ) -> diesel::serialize::Result {
        self.as_str().to_sql(out)
    }
}

impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for PrinterState
where
    DB: diesel::backend::Backend,
    String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
        Ok(PrinterState::parse(&String::from_sql(bytes)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_converts_both_ways() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::from_id(s.id()), Some(*s));
        }
        assert_eq!(JobStatus::from_id(12), None);
        assert_eq!(serde_json::to_string(&JobStatus::Finished).unwrap(), "77");
        fn text<T: Copy + PartialEq + std::fmt::Debug>(
            all: &[T],
            as_str: fn(T) -> &'static str,
            parse: fn(&str) -> Option<T>,
        ) {
            for v in all {
                assert_eq!(parse(as_str(*v)), Some(*v));
            }
            assert_eq!(parse("nonsense"), None);
        }
        text(FileKind::ALL, FileKind::as_str, FileKind::parse);
        text(FileState::ALL, FileState::as_str, FileState::parse);
        text(SliceStatus::ALL, SliceStatus::as_str, SliceStatus::parse);
        text(QuoteStatus::ALL, QuoteStatus::as_str, QuoteStatus::parse);
        text(
            CommandStatus::ALL,
            CommandStatus::as_str,
            CommandStatus::parse,
        );
        assert_eq!(FileKind::ThreeMf.to_string(), "3mf");
        for (state, word) in PrinterState::KNOWN {
            assert_eq!(state.as_str(), *word);
            assert_eq!(PrinterState::parse(word), *state);
        }
        let odd = PrinterState::parse("printing_locally");
        assert_eq!(odd, PrinterState::Other("printing_locally".into()));
        assert_eq!(odd.as_str(), "printing_locally");
        assert_eq!(
            serde_json::to_string(&SliceStatus::Done).unwrap(),
            "\"done\""
        );
    }
}
