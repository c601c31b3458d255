//! The demo farm (`printfarm serve --demo`): a few virtual printers run in-process by the
//! agent's virtual driver, sample files and a queue that keeps them printing, so a newcomer
//! sees a working farm in the console and the APIs at once. Everything belongs to one demo
//! user of the first organization; an organization admin removes it all with one action.
//!
//! The printers join as any printer does: the in-process agent registers them and the demo
//! redeems their registration codes as the demo user. The printing is real (jobs, downloads,
//! progress and history go through the agent protocol); only the printers are simulated.

use crate::db::models::{
    access_role, DemoCounts, DemoFarm, FarmJob, Organization, Printer, RegistrationCode,
    StoredFile, User,
};
use crate::db::{self, DbConn};
use crate::error::{Conflict, Error, Result};
use crate::services::auth::PasswordHasher;
use crate::services::bootstrap::{self, NewAccount};
use crate::services::farm::{self, FarmRequest, Target};
use crate::services::files;
use crate::services::jobs::JobContext;
use crate::services::orgs::is_org_admin;
use crate::services::printers;

/// The demo's user: owns its printers, files and jobs; has no password (nobody signs in as it).
pub const DEMO_EMAIL: &str = "demo-farm@printfarm.invalid";
/// The project the sample files are in.
pub const PROJECT: &str = "Demo farm samples";
/// USB ids the virtual printers register with (their device keys: `DEMO:DEMO:<snr>`).
pub const USB_ID: &str = "DEMO";
/// The feeder stops adding work past this many demo jobs (a demo left running for days
/// must not grow the database without end).
pub const MAX_JOBS: i64 = 1000;

/// One virtual printer of the demo.
pub struct DemoPrinter {
    pub name: &'static str,
    pub snr: &'static str,
    pub printer_type: &'static str,
    pub material: &'static str,
    pub color: &'static str,
    /// Simulated seconds per real second: the 16-minute sample cube prints in 1.5 to 2
    /// minutes, each printer at its own pace so that they do not run in step.
    pub speed_factor: f64,
}

pub const PRINTERS: &[DemoPrinter] = &[
    DemoPrinter {
        name: "Demo MK4S (left)",
        snr: "DEMO-MK4S-1",
        printer_type: "PRUSA_MK4S",
        material: "PLA",
        color: "#FF8800",
        speed_factor: 10.0,
    },
    DemoPrinter {
        name: "Demo MK4S (right)",
        snr: "DEMO-MK4S-2",
        printer_type: "PRUSA_MK4S",
        material: "PLA",
        color: "#1E88E5",
        speed_factor: 8.0,
    },
    DemoPrinter {
        name: "Demo Core One",
        snr: "DEMO-CORE1-1",
        printer_type: "PRUSA_CORE_ONE",
        material: "PETG",
        color: "#43A047",
        speed_factor: 12.0,
    },
    DemoPrinter {
        name: "Demo MINI+",
        snr: "DEMO-MINI-1",
        printer_type: "PRUSA_MINI_PLUS",
        material: "PLA",
        color: "#E53935",
        speed_factor: 9.0,
    },
];

/// The sample files: two G-codes the printers print (the 7-minute cylinder first, so the
/// history starts within a minute), and a model to slice.
pub const SAMPLES: &[(&str, &[u8])] = &[
    (
        "demo_cylinder.gcode",
        include_bytes!("../../fixtures/cylinder_prusa.gcode"),
    ),
    (
        "demo_cube_20mm.gcode",
        include_bytes!("../../fixtures/cube_20mm.gcode"),
    ),
    (
        "demo_cube_20mm.stl",
        include_bytes!("../../fixtures/cube_20mm.stl"),
    ),
];

impl DemoPrinter {
    /// How the server knows the device (`DeviceInfo::key`).
    pub fn device_key(&self) -> String {
        format!("{USB_ID}:{USB_ID}:{}", self.snr)
    }
}

fn device_keys() -> Vec<String> {
    PRINTERS.iter().map(DemoPrinter::device_key).collect()
}

/// The demo farm, creating its user in the first organization when there is none yet.
/// Answers whether it was created now.
pub fn ensure(conn: &mut DbConn, hasher: &PasswordHasher) -> Result<(DemoFarm, bool)> {
    db::write_transaction(conn, |c| {
        if let Some(demo) = DemoFarm::get(c)? {
            return Ok((demo, false));
        }
        let org = Organization::first(c)?
            .ok_or_else(|| Error::invalid("there is no organization to add the demo farm to"))?;
        if User::find_by_email(c, DEMO_EMAIL)?.is_some() {
            return Err(Error::conflict(
                Conflict::AlreadyExists,
                format!("a user {DEMO_EMAIL} exists but is not the demo farm's; remove it first"),
            ));
        }
        let user = bootstrap::create_user(
            c,
            hasher,
            &NewAccount {
                organization_id: org.id,
                email: DEMO_EMAIL,
                password: None,
                firstname: "Demo",
                lastname: "Farm",
                company: "",
                access_role: access_role::MEMBER,
                gdpr: 3,
            },
        )?;
        Ok((DemoFarm::insert(c, user.id, org.id)?, true))
    })
}

/// The demo farm and its user, if there is one.
pub fn get(conn: &mut DbConn) -> Result<Option<(DemoFarm, User)>> {
    let Some(demo) = DemoFarm::get(conn)? else {
        return Ok(None);
    };
    let user = User::find(conn, demo.user_id)?
        .ok_or_else(|| Error::internal("the demo farm's user is missing"))?;
    Ok(Some((demo, user)))
}

/// The sample files not stored yet (a start interrupted while storing them goes on).
pub fn missing_samples(
    conn: &mut DbConn,
    demo: &DemoFarm,
) -> Result<Vec<(&'static str, &'static [u8])>> {
    let have: Vec<String> = demo.files(conn)?.into_iter().map(|f| f.filename).collect();
    Ok(SAMPLES
        .iter()
        .filter(|(name, _)| !have.iter().any(|h| h == name))
        .copied()
        .collect())
}

/// Adds the virtual printers that wait with a registration code, as the demo user's printers
/// (the same redemption an admin does for a real printer). Answers how many joined.
fn admit_printers(conn: &mut DbConn, user: &User) -> Result<usize> {
    let mut joined = 0;
    for p in PRINTERS {
        if let Some(code) = RegistrationCode::waiting_for_device(conn, &p.device_key())? {
            let printer = printers::redeem_code(conn, user, &code.code)?;
            // The agent protocol carries no name: a new printer is named by type and serial.
            if printer.name != p.name {
                Printer::set_name(conn, printer.id, p.name)?;
            }
            joined += 1;
        }
    }
    Ok(joined)
}

/// Keeps the virtual printers busy: once the demo user's farm jobs have no copy waiting,
/// queues one copy per printer of the next sample G-code on the demo printers only (never on
/// the organization's real ones). Answers the farm job queued, if any.
fn feed(
    conn: &mut DbConn,
    demo: &DemoFarm,
    user: &User,
    ctx: &JobContext,
) -> Result<Option<FarmJob>> {
    let printers: Vec<Printer> = demo.printers(conn)?;
    if printers.len() < PRINTERS.len() {
        return Ok(None);
    }
    let waiting = FarmJob::waiting(conn, Some(&[demo.organization_id]))?;
    if waiting.iter().any(|fj| fj.user_id == user.id) {
        return Ok(None);
    }
    if demo.counts(conn)?.jobs >= MAX_JOBS {
        return Ok(None);
    }
    let gcodes: Vec<StoredFile> = demo
        .files(conn)?
        .into_iter()
        .filter(StoredFile::is_printable)
        .collect();
    if gcodes.is_empty() {
        return Ok(None);
    }
    // Alternate the samples batch by batch.
    let batches = FarmJob::of_org(conn, demo.organization_id, Some(user.id), 1)?;
    let last = batches.first().map(|fj| fj.file_id);
    let file = gcodes
        .iter()
        .position(|f| Some(f.id) == last)
        .map_or(&gcodes[0], |i| &gcodes[(i + 1) % gcodes.len()]);
    let fj = farm::create(
        conn,
        user,
        FarmRequest {
            file_id: file.id,
            target: Target::Printers(printers.iter().map(|p| p.id).collect()),
            copies: i32::try_from(printers.len()).map_err(Error::internal)?,
            material: None,
            color: None,
            priority: None,
        },
        ctx,
    )?;
    Ok(Some(fj))
}

/// What one look at the demo farm did.
pub struct Tended {
    /// Virtual printers admitted now.
    pub admitted: usize,
    /// Whether a batch was queued.
    pub fed: bool,
}

/// One look at the demo farm (its runner's, every few seconds): admits the virtual printers
/// that wait with a code and keeps the queue fed. None: there is no demo farm (any more).
pub fn tend(conn: &mut DbConn, ctx: &JobContext) -> Result<Option<Tended>> {
    let Some((demo, user)) = get(conn)? else {
        return Ok(None);
    };
    let admitted = admit_printers(conn, &user)?;
    let fed = feed(conn, &demo, &user, ctx)?.is_some();
    Ok(Some(Tended { admitted, fed }))
}

/// What the demo farm holds, for an organization admin of its organization (None otherwise,
/// and when there is no demo).
pub fn status(conn: &mut DbConn, admin: &User) -> Result<Option<DemoCounts>> {
    match DemoFarm::get(conn)? {
        Some(demo) if is_org_admin(admin) && admin.organization_id == demo.organization_id => {
            Ok(Some(demo.counts(conn)?))
        }
        _ => Ok(None),
    }
}

/// Removes the demo farm: its printers with their jobs, its sample files and anything printed
/// from them, its user. `by` must be an admin of its organization (None: the command line).
/// Answers what was removed and the stored objects to delete once this committed.
pub fn remove(conn: &mut DbConn, by: Option<&User>) -> Result<(DemoCounts, Vec<String>)> {
    db::write_transaction(conn, |c| {
        let demo = DemoFarm::get(c)?.ok_or_else(|| Error::not_found("There is no demo farm"))?;
        if let Some(admin) = by {
            if !is_org_admin(admin) || admin.organization_id != demo.organization_id {
                return Err(Error::denied(
                    "Only an admin of the demo farm's organization may remove it",
                ));
            }
        }
        let counts = demo.counts(c)?;
        let keys = demo
            .delete_all(c, &device_keys())?
            .iter()
            .flat_map(files::stored_keys)
            .collect();
        Ok((counts, keys))
    })
}

/// Deletes the registration codes the virtual printers asked for (after they stopped, when
/// the demo is gone).
pub fn forget_devices(conn: &mut DbConn) -> Result<usize> {
    Ok(RegistrationCode::delete_for_devices(conn, &device_keys())?)
}
