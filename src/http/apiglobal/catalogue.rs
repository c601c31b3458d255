//! Calls 12 and 21: the printer-type catalogue.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::envelope::ok;
use super::{authenticate, Form};
use crate::error::Error;
use crate::services::printer_types;
use crate::AppState;

pub async fn get_printer_types(
    state: web::Data<AppState>,
    Form(p): Form,
) -> Result<HttpResponse, Error> {
    authenticate(&state, &p).await?;
    let description = p.str("description").map(str::to_string);
    let software = p.str("software_version").map(str::to_string);
    let types = state
        .db(move |c| printer_types::list(c, description.as_deref(), software.as_deref()))
        .await?;
    Ok(ok(types
        .iter()
        .map(|t| json!({"id": t.id, "description": t.description}))
        .collect::<Vec<_>>()))
}

/// No session needed: slicer plugins call it before anyone signs in.
pub async fn get_printer_types_detailed(
    state: web::Data<AppState>,
    Form(p): Form,
) -> Result<HttpResponse, Error> {
    let description = p.str("description").map(str::to_string);
    let software = p.str("software_version").map(str::to_string);
    let types = state
        .db(move |c| printer_types::list(c, description.as_deref(), software.as_deref()))
        .await?;
    let list = types
        .iter()
        .map(|t| {
            let params: serde_json::Value =
                serde_json::from_str(&t.printer_parameters).map_err(Error::internal)?;
            Ok(json!({"id": t.id, "description": t.description, "printer_parameters": params}))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(ok(list))
}
