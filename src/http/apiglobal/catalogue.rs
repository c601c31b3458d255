//! Calls 12 and 21: the printer-type catalogue.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::envelope::{ok, Envelope, Failures};
use super::{forms, Args, Signed};
use crate::error::Error;
use crate::services::printer_types;
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct PrinterTypeItem {
    pub id: i64,
    pub description: String,
}

#[derive(Serialize, ToSchema)]
pub struct PrinterTypeDetailed {
    pub id: i64,
    pub description: String,
    /// Build volume, filament diameter, offsets, … as strings, e.g.
    /// `{"x": "340", "y": "340", "z": "230", "filament_diameter": "1.75"}`.
    #[schema(value_type = Object)]
    pub printer_parameters: Value,
}

#[utoipa::path(post, path = "/apiglobal/get_printer_types", tag = "Printer types",
    request_body(content = forms::PrinterTypes, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The printer types", body = Envelope<Vec<PrinterTypeItem>>), Failures))]
pub async fn get_printer_types(
    state: web::Data<AppState>,
    call: Signed<forms::PrinterTypes>,
) -> Result<HttpResponse, Error> {
    let description = call.params.description;
    let types = call
        .caller
        .db(&state, move |c, _| {
            printer_types::list(c, description.as_deref())
        })
        .await?;
    Ok(ok(types
        .iter()
        .map(|t| PrinterTypeItem {
            id: t.id,
            description: t.description.clone(),
        })
        .collect::<Vec<_>>()))
}

/// No session needed: slicer plugins call it before anyone signs in.
#[utoipa::path(post, path = "/apiglobal/get_printer_types_detailed", tag = "Printer types",
    request_body(content = forms::PrinterTypesDetailed, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The printer types with their parameters (no session needed)", body = Envelope<Vec<PrinterTypeDetailed>>), Failures))]
pub async fn get_printer_types_detailed(
    state: web::Data<AppState>,
    Args(p): Args<forms::PrinterTypesDetailed>,
) -> Result<HttpResponse, Error> {
    let description = p.description;
    let types = state
        .db(move |c| printer_types::list(c, description.as_deref()))
        .await?;
    let list = types
        .iter()
        .map(|t| {
            Ok(PrinterTypeDetailed {
                id: t.id,
                description: t.description.clone(),
                printer_parameters: serde_json::from_str(&t.printer_parameters)
                    .map_err(Error::internal)?,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(ok(list))
}
