//! First-start work and the administrative actions of `printfarm admin`: organizations,
//! users with a role, password resets, and the printer-type catalogue.

use serde::Deserialize;

use crate::db::models::{
    access_role, normalize_email, NewUser, OrgId, Organization, PrinterType, Session, User,
};
use crate::db::{self, DbConn};
use crate::error::{Conflict, Error, Result};
use crate::services::auth::{check_new_password, random_password, PasswordHasher};

const PRINTER_TYPES_JSON: &str = include_str!("../../fixtures/printer_types.json");

#[derive(Deserialize)]
struct CatalogueEntry {
    id: i64,
    short_name: String,
    description: String,
    vendor: String,
    industrial: bool,
    software_version: String,
    printer_parameters: serde_json::Map<String, serde_json::Value>,
}

/// Loads the printer-type catalogue into an empty table; returns how many were inserted.
pub fn load_printer_types(conn: &mut DbConn) -> Result<usize> {
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(PRINTER_TYPES_JSON).map_err(Error::internal)?;
    db::write_transaction(conn, |c| -> Result<usize> {
        if PrinterType::count(c)? > 0 {
            return Ok(0);
        }
        let now = db::now();
        for raw in &entries {
            let e: CatalogueEntry = serde_json::from_value(raw.clone()).map_err(Error::internal)?;
            PrinterType::insert(
                c,
                &PrinterType {
                    id: e.id,
                    short_name: e.short_name,
                    description: e.description,
                    vendor: e.vendor,
                    industrial: e.industrial,
                    software_version: e.software_version,
                    printer_parameters: serde_json::Value::Object(e.printer_parameters).to_string(),
                    profile: raw.to_string(),
                    created_at: now,
                },
            )?;
        }
        Ok(entries.len())
    })
}

pub fn create_organization(conn: &mut DbConn, name: &str) -> Result<Organization> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::invalid("organization name must not be empty"));
    }
    Ok(Organization::insert(conn, name)?)
}

pub struct NewAccount<'a> {
    pub organization_id: OrgId,
    pub email: &'a str,
    pub password: Option<&'a str>,
    pub firstname: &'a str,
    pub lastname: &'a str,
    pub company: &'a str,
    pub access_role: i32,
    /// 1: consent to processing email and IP address; 3: also personal data across the system.
    pub gdpr: i32,
}

fn check_email(email: &str) -> Result<String> {
    let email = normalize_email(email);
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace());
    if !valid {
        return Err(Error::invalid(format!(
            "'{email}' is not a valid email address"
        )));
    }
    Ok(email)
}

/// Creates a user; the password is hashed here. Duplicate emails answer 409.
pub fn create_user(conn: &mut DbConn, hasher: &PasswordHasher, new: &NewAccount) -> Result<User> {
    let email = check_email(new.email)?;
    if !access_role::is_valid(new.access_role) {
        return Err(Error::invalid(
            "access_role must be 0 (member), 1 (admin) or 2 (workgroup admin)",
        ));
    }
    if Organization::find(conn, new.organization_id)?.is_none() {
        return Err(Error::not_found(format!(
            "organization {} not found",
            new.organization_id
        )));
    }
    if User::find_by_email(conn, &email)?.is_some() {
        return Err(Error::conflict(
            Conflict::AlreadyExists,
            format!("a user with email {email} already exists"),
        ));
    }
    let hash = match new.password {
        Some(p) => {
            check_new_password(p)?;
            Some(hasher.hash(p)?)
        }
        None => None,
    };
    let now = db::now();
    Ok(User::insert(
        conn,
        &NewUser {
            organization_id: new.organization_id,
            email: &email,
            password_hash: hash.as_deref(),
            firstname: new.firstname,
            lastname: new.lastname,
            company: new.company,
            access_role: new.access_role,
            gdpr: new.gdpr,
            quota_used: 0,
            disabled: false,
            created_at: now,
            updated_at: now,
        },
    )?)
}

/// Sets a new password (random when none is given), ends the user's sessions, and returns it.
pub fn reset_password(
    conn: &mut DbConn,
    hasher: &PasswordHasher,
    email: &str,
    password: Option<&str>,
) -> Result<String> {
    let password = match password {
        Some(p) => {
            check_new_password(p)?;
            p.to_string()
        }
        None => random_password(),
    };
    let hash = hasher.hash(&password)?;
    db::write_transaction(conn, |c| -> Result<()> {
        let user = User::find_by_email(c, email)?.ok_or_else(|| {
            Error::not_found(format!("no user with email {}", normalize_email(email)))
        })?;
        User::set_password_hash(c, user.id, &hash)?;
        Session::delete_for_user(c, user.id)?;
        Ok(())
    })?;
    Ok(password)
}

/// The first organization and its admin, created when the database has no users at all.
pub struct FirstAdmin {
    pub organization: Organization,
    pub user: User,
    pub password: String,
}

pub fn ensure_first_admin(
    conn: &mut DbConn,
    hasher: &PasswordHasher,
    organization: &str,
    admin_email: &str,
) -> Result<Option<FirstAdmin>> {
    let password = random_password();
    let created = db::write_transaction(conn, |c| -> Result<Option<FirstAdmin>> {
        if User::count(c)? > 0 {
            return Ok(None);
        }
        let org = create_organization(c, organization)?;
        let user = create_user(
            c,
            hasher,
            &NewAccount {
                organization_id: org.id,
                email: admin_email,
                password: Some(&password),
                firstname: "Admin",
                lastname: "",
                company: "",
                access_role: access_role::ADMIN,
                gdpr: 3,
            },
        )?;
        Ok(Some(FirstAdmin {
            organization: org,
            user,
            password: password.clone(),
        }))
    });
    match created {
        // Another instance bootstrapped at the same moment: its admin stands.
        Err(Error::Conflict(Conflict::AlreadyExists, _)) => Ok(None),
        other => other,
    }
}
