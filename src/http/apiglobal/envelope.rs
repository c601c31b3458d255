//! The success half of the Global API envelope; failures come from `Error`'s mapping.

use actix_web::HttpResponse;
use serde::Serialize;

pub fn ok(message: impl Serialize) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "result": true,
        "message": message,
    }))
}
