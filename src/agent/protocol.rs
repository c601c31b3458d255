//! Wire format of the 3DPrinterOS printer protocol (APIPrinter v1), client side.
//!
//! Every call is a JSON POST to `<prefix><target>`; answers are JSON objects or lists.
//! Protocol errors arrive as `{"error": {"code": N, "message": "..."}}` (normally with
//! HTTP 200, but any status carrying that shape is taken as a protocol error).

use std::time::Duration;

use serde_json::{json, Map, Value};

/// Error codes this agent acts on or sends (see the protocol notes, §2.6).
pub mod codes {
    /// Server: the auth token is invalid → register again.
    pub const INVALID_TOKEN: i64 = 3;
    /// Server: the registration code is unknown or expired → start over without it.
    pub const BAD_REGISTRATION_CODE: i64 = 31;
    pub const DOWNLOAD_FAILED: i64 = 65;
    pub const DOWNLOAD_SIZE: i64 = 66;
    pub const DOWNLOAD_FILE: i64 = 67;
    pub const NOT_OPERATIONAL: i64 = 77;
    pub const PRINTER_LOST: i64 = 99;
    pub const DOWNLOAD_RUNNING: i64 = 108;
    pub const COMMAND_FAILED: i64 = 109;
    pub const UNKNOWN_COMMAND: i64 = 110;
    pub const UNSUPPORTED_COMMAND: i64 = 111;
    pub const CANCELED_LOCALLY: i64 = 117;
    pub const PRINTER_BUSY: i64 = 604;
    pub const PRINT_FAILED: i64 = 610;
    pub const PRINTER_ERROR: i64 = 611;
}

/// Error levels of the `error` list.
pub mod levels {
    pub const CRITICAL: i64 = 50;
    pub const BLOCKING: i64 = 40;
    pub const INFO: i64 = 20;
}

/// A request failed before a protocol answer arrived: retry with backoff.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("request failed: {0}")]
    Http(String),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("answer is not a JSON object or list: {0}")]
    BadBody(String),
}

/// `{"error": {...}}` from the server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerError {
    pub code: i64,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RegisterAnswer {
    /// Not redeemed yet: show this code to the operator and keep polling with it.
    Code(String),
    Token {
        auth_token: String,
        email: Option<String>,
    },
    Error(ServerError),
}

/// One command from the server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerCommand {
    pub name: String,
    pub number: i64,
    /// The whole answer object (payload, is_link, filename, job_id, …).
    pub body: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CommandAnswer {
    Nothing,
    Command(ServerCommand),
    /// The answer had a `command` we cannot use (no or bad `number`).
    Malformed(String),
    Error(ServerError),
}

/// `{number, result}` acknowledging a command on the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ack {
    pub number: i64,
    pub result: bool,
}

/// An entry of the request's `error` list.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ErrorEntry {
    pub code: i64,
    pub message: String,
    pub level: i64,
}

/// HTTP client for one printer (each printer has its own connection pool).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl Client {
    pub fn new(base: String, timeout: Duration) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(6))
            // Below the server's 5 s keep-alive: never write a poll on a connection the server
            // is closing (with long poll_interval_ms that race fails a request now and then).
            .pool_idle_timeout(Duration::from_secs(4))
            .user_agent(concat!("printfarm-agent/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client {
            http,
            base,
            timeout,
        })
    }

    /// POSTs `body` to `target`; `extra` lengthens the timeout (long polls).
    pub async fn call(
        &self,
        target: &str,
        body: &Value,
        extra: Duration,
    ) -> Result<Value, TransportError> {
        let res = self
            .http
            .post(format!("{}{target}", self.base))
            .timeout(self.timeout + extra)
            .json(body)
            .send()
            .await
            .map_err(|e| TransportError::Http(error_chain(&e)))?;
        let status = res.status().as_u16();
        let text = res
            .text()
            .await
            .map_err(|e| TransportError::Http(error_chain(&e)))?;
        parse_body(status, &text)
    }

    pub async fn register(&self, body: &Value) -> Result<RegisterAnswer, TransportError> {
        self.call("register", body, Duration::ZERO)
            .await
            .map(|v| parse_register(&v))
    }

    pub async fn command(
        &self,
        body: &Value,
        wait: Duration,
    ) -> Result<CommandAnswer, TransportError> {
        self.call("command", body, wait)
            .await
            .map(|v| parse_command(&v))
    }

    /// `camera`; returns the server's `state` (1 = someone watches: send full frames).
    pub async fn camera(&self, token: &str, image: &str) -> Result<Option<i64>, TransportError> {
        let v = self
            .call(
                "camera",
                &json!({"auth_token": token, "image": image}),
                Duration::ZERO,
            )
            .await?;
        Ok(v.get("state").and_then(as_i64))
    }
}

/// reqwest's Display hides the cause ("error sending request"); include the chain.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn parse_body(status: u16, text: &str) -> Result<Value, TransportError> {
    let trimmed = text.trim();
    let parsed: Option<Value> = if trimmed.is_empty() {
        Some(Value::Object(Map::new()))
    } else {
        serde_json::from_str(trimmed).ok()
    };
    match parsed {
        Some(v) if status == 200 && (v.is_object() || v.is_array()) => Ok(v),
        // A protocol error sent with another status is still a protocol error.
        Some(v) if server_error(&v).is_some() => Ok(v),
        _ if status != 200 => Err(TransportError::Status {
            status,
            body: truncate(trimmed, 200),
        }),
        _ => Err(TransportError::BadBody(truncate(trimmed, 200))),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Numbers may come as JSON numbers or numeric strings.
pub fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn server_error(v: &Value) -> Option<ServerError> {
    let e = v.get("error")?;
    match e {
        Value::Object(o) => Some(ServerError {
            code: o.get("code").and_then(as_i64).unwrap_or(0),
            message: o
                .get("message")
                .map(|m| m.as_str().map(str::to_string).unwrap_or(m.to_string()))
                .unwrap_or_default(),
        }),
        Value::Null => None,
        other => Some(ServerError {
            code: 0,
            message: other
                .as_str()
                .map(str::to_string)
                .unwrap_or(other.to_string()),
        }),
    }
}

fn non_empty_str(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub fn parse_register(v: &Value) -> RegisterAnswer {
    if let Some(e) = server_error(v) {
        return RegisterAnswer::Error(e);
    }
    if let Some(token) = non_empty_str(v.get("auth_token")) {
        return RegisterAnswer::Token {
            auth_token: token,
            email: non_empty_str(v.get("email")),
        };
    }
    if let Some(code) = non_empty_str(v.get("registration_code")) {
        return RegisterAnswer::Code(code);
    }
    RegisterAnswer::Error(ServerError {
        code: 0,
        message: format!(
            "register answer has neither auth_token nor registration_code: {}",
            truncate(&v.to_string(), 200)
        ),
    })
}

pub fn parse_command(v: &Value) -> CommandAnswer {
    let Some(obj) = v.as_object() else {
        // `[]` (and any list) means "nothing to do".
        return CommandAnswer::Nothing;
    };
    // A command wins over an informational error in the same answer.
    let name = match obj.get("command") {
        None | Some(Value::Null) => {
            return match server_error(v) {
                Some(e) => CommandAnswer::Error(e),
                None => CommandAnswer::Nothing,
            }
        }
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(other) => return CommandAnswer::Malformed(format!("command is {other}")),
    };
    match obj.get("number").and_then(as_i64) {
        Some(number) => CommandAnswer::Command(ServerCommand {
            name,
            number,
            body: obj.clone(),
        }),
        None => CommandAnswer::Malformed(format!("command {name:?} has no usable number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_register_answers() {
        assert_eq!(
            parse_register(&json!({"registration_code": "AB12-CD34"})),
            RegisterAnswer::Code("AB12-CD34".into())
        );
        assert_eq!(
            parse_register(&json!({"auth_token": "t", "email": "a@b"})),
            RegisterAnswer::Token {
                auth_token: "t".into(),
                email: Some("a@b".into())
            }
        );
        assert_eq!(
            parse_register(&json!({"error": {"code": 31, "message": "expired"}})),
            RegisterAnswer::Error(ServerError {
                code: 31,
                message: "expired".into()
            })
        );
        assert!(matches!(
            parse_register(&json!([])),
            RegisterAnswer::Error(_)
        ));
        assert!(matches!(
            parse_register(&json!({"error": {"code": "31"}})),
            RegisterAnswer::Error(ServerError { code: 31, .. })
        ));
    }

    #[test]
    fn parses_command_answers() {
        assert_eq!(parse_command(&json!({})), CommandAnswer::Nothing);
        assert_eq!(parse_command(&json!([])), CommandAnswer::Nothing);
        assert_eq!(
            parse_command(&json!({"command": null})),
            CommandAnswer::Nothing
        );
        let CommandAnswer::Command(c) = parse_command(&json!({"command": "pause", "number": "7"}))
        else {
            panic!()
        };
        assert_eq!((c.name.as_str(), c.number), ("pause", 7));
        assert!(matches!(
            parse_command(&json!({"command": "pause"})),
            CommandAnswer::Malformed(_)
        ));
        assert!(matches!(
            parse_command(&json!({"command": 5, "number": 1})),
            CommandAnswer::Malformed(_)
        ));
        assert!(matches!(
            parse_command(&json!({"error": {"code": 3, "message": "invalid auth token"}})),
            CommandAnswer::Error(ServerError { code: 3, .. })
        ));
    }

    #[test]
    fn classifies_bodies() {
        assert!(parse_body(200, "").unwrap().is_object());
        assert!(parse_body(200, "[]").unwrap().is_array());
        assert!(matches!(
            parse_body(200, "<html>"),
            Err(TransportError::BadBody(_))
        ));
        assert!(matches!(
            parse_body(200, "42"),
            Err(TransportError::BadBody(_))
        ));
        assert!(matches!(
            parse_body(502, "bad gateway"),
            Err(TransportError::Status { status: 502, .. })
        ));
        // An error envelope with a non-200 status is a protocol answer.
        let v = parse_body(401, r#"{"error":{"code":3,"message":"x"}}"#).unwrap();
        assert!(matches!(
            parse_command(&v),
            CommandAnswer::Error(ServerError { code: 3, .. })
        ));
        assert_eq!(truncate("héllo", 2), "h…");
    }
}
