//! How jobs end: who or what ended a job early (`jobs.cancel_source`) and why a person
//! cancelled it (`jobs.cancel_reason`). Shared by the queue (`jobs`) and the reports, so it
//! sits below both.

use crate::error::{Error, Result};

/// Who or what ended a job before it finished (`jobs.cancel_source`). The report's status
/// column is derived from it (`CANCELLED_WEB`, `CANCELLED_PRINTER`).
pub mod cancel_source {
    /// Cancelled through the API or the web (`job_cancel`).
    pub const CANCELLED_WEB: &str = "CANCELLED_WEB";
    /// The agent reported the printer's own cancel.
    pub const CANCELLED_PRINTER: &str = "CANCELLED_PRINTER";
    /// The printer went back to ready before the job was done.
    pub const STOPPED_ON_PRINTER: &str = "STOPPED_ON_PRINTER";
    /// The printer reported an error.
    pub const PRINTER_ERROR: &str = "PRINTER_ERROR";
    /// The agent restarted and dropped the job (`reset_job`).
    pub const AGENT_RESET: &str = "AGENT_RESET";
    /// Auto-start could not charge the job's owner.
    pub const NOT_CHARGEABLE: &str = "NOT_CHARGEABLE";
}

/// Why a person cancelled a job: `job_cancel`'s `reason` takes the code (or the label), the
/// report's "Cancel Reason" shows the label. 3DPrinterOS asks this from a list in its web
/// page, but publishes no list; this one is printfarm's own, covering the usual causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    HardwareIssue,
    PrintQuality,
    WrongSettings,
    WrongFile,
    MaterialIssue,
    BedAdhesion,
    TooLong,
    NotNeeded,
    Other,
}

impl CancelReason {
    pub const ALL: [CancelReason; 9] = [
        CancelReason::HardwareIssue,
        CancelReason::PrintQuality,
        CancelReason::WrongSettings,
        CancelReason::WrongFile,
        CancelReason::MaterialIssue,
        CancelReason::BedAdhesion,
        CancelReason::TooLong,
        CancelReason::NotNeeded,
        CancelReason::Other,
    ];

    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            CancelReason::HardwareIssue => "hardware_issue",
            CancelReason::PrintQuality => "print_quality",
            CancelReason::WrongSettings => "wrong_settings",
            CancelReason::WrongFile => "wrong_file",
            CancelReason::MaterialIssue => "material_issue",
            CancelReason::BedAdhesion => "bed_adhesion",
            CancelReason::TooLong => "too_long",
            CancelReason::NotNeeded => "not_needed",
            CancelReason::Other => "other",
        }
    }

    /// What the report shows.
    pub fn label(self) -> &'static str {
        match self {
            CancelReason::HardwareIssue => "Hardware issue",
            CancelReason::PrintQuality => "Print quality",
            CancelReason::WrongSettings => "Wrong settings",
            CancelReason::WrongFile => "Wrong file or model",
            CancelReason::MaterialIssue => "Filament or material issue",
            CancelReason::BedAdhesion => "Bed adhesion",
            CancelReason::TooLong => "Takes too long",
            CancelReason::NotNeeded => "No longer needed",
            CancelReason::Other => "Other",
        }
    }

    pub fn from_code(code: &str) -> Option<CancelReason> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// What a person sends: the code or the label, in any case (`Print quality`, `PRINT_QUALITY`).
    /// Anything else is refused with the list of codes.
    pub fn parse(input: &str) -> Result<CancelReason> {
        let t = input.trim();
        Self::ALL
            .into_iter()
            .find(|r| r.code().eq_ignore_ascii_case(t) || r.label().eq_ignore_ascii_case(t))
            .ok_or_else(|| {
                let codes: Vec<&str> = Self::ALL.iter().map(|r| r.code()).collect();
                Error::invalid(format!(
                    "reason must be one of: {} (free text goes in details)",
                    codes.join(", ")
                ))
            })
    }
}

/// Read from a request as `parse` reads it: a code or a label, else the list of codes.
impl<'de> serde::Deserialize<'de> for CancelReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        CancelReason::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::CancelReason;

    #[test]
    fn cancel_reasons_parse_by_code_or_label() {
        for r in CancelReason::ALL {
            assert_eq!(CancelReason::from_code(r.code()), Some(r));
            assert_eq!(CancelReason::parse(r.code()).unwrap(), r);
            assert_eq!(CancelReason::parse(&r.label().to_uppercase()).unwrap(), r);
            // The serde spelling (the OpenAPI enum) is the stored code.
            assert_eq!(serde_json::to_value(r).unwrap(), r.code());
        }
        assert_eq!(
            CancelReason::parse(" Print quality ").unwrap(),
            CancelReason::PrintQuality
        );
        let e = CancelReason::parse("it was ugly").unwrap_err().to_string();
        assert!(e.contains("hardware_issue") && e.contains("other"), "{e}");
    }
}
