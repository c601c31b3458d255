//! The database goes away: requests must fail fast with 503 (not wait out the pool's 10 s
//! checkout timeout), `/readyz` must say so within a second, and service must come back by
//! itself as soon as the database does. Postgres only: an embedded SQLite file cannot be cut off.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;

use crate::common::{PgDatabase, TestApp};

/// A TCP proxy in front of Postgres that can be cut: while cut, live connections are shut and
/// new ones closed at once, as when the database host goes down.
struct CuttableProxy {
    port: u16,
    cut: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl CuttableProxy {
    fn start(target: &str) -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, l, target) = (cut.clone(), live.clone(), target.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if c.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                {
                    let mut live = l.lock().unwrap();
                    live.push(client.try_clone().unwrap());
                    live.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        CuttableProxy { port, cut, live }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

async fn status_of(app: &TestApp, client: &reqwest::Client, path: &str, session: &str) -> u16 {
    let req = if path == "/readyz" {
        client.get(app.url(path))
    } else {
        client.post(app.url(path)).form(&[("session", session)])
    };
    // A request that waited out the pool's 10 s checkout would fail here instead.
    req.send()
        .await
        .expect("answered within the client's timeout")
        .status()
        .as_u16()
}

#[actix_web::test]
async fn requests_fail_fast_while_the_database_is_down_and_recover() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let proxy = CuttableProxy::start("127.0.0.1:5432");
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.port)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_on(url.to_string(), dir, Some(db), &[]).await;
    let session = app.login_new_user("down@faults.test").await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    assert_eq!(status_of(&app, &client, "/readyz", "").await, 200);
    assert_eq!(
        status_of(&app, &client, "/apiglobal/check_session", &session).await,
        200
    );

    proxy.cut();
    assert_eq!(status_of(&app, &client, "/readyz", "").await, 503);
    // The first request finds the pool's connections dead and the database unreachable; the
    // next ones are refused without waiting.
    for _ in 0..20 {
        assert_eq!(
            status_of(&app, &client, "/apiglobal/check_session", &session).await,
            503
        );
    }
    let (status, body) = app
        .post("/apiglobal/check_session", &[("session", &session)])
        .await;
    assert_eq!(status, 503);
    assert_eq!(body["result"], false);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Database unavailable"),
        "{body}"
    );

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match status_of(&app, &client, "/apiglobal/check_session", &session).await {
            200 => break,
            503 if Instant::now() < deadline => {
                actix_web::rt::time::sleep(Duration::from_millis(100)).await
            }
            other => panic!("no recovery after the database came back: {other}"),
        }
    }
    assert_eq!(status_of(&app, &client, "/readyz", "").await, 200);
    app.stop().await;
}

/// Every connection of the server is killed by Postgres (`pg_terminate_backend`, what a
/// failover or an operator does): the next requests are served on fresh connections, with at
/// most a 503 for a request caught mid-way, never a 500.
#[actix_web::test]
async fn terminated_connections_are_replaced() {
    let Some(app) = TestApp::start(crate::common::Db::Postgres, &[]).await else {
        return;
    };
    let session = app.login_new_user("terminated@faults.test").await;
    let name = {
        let mut c = app.conn();
        let printfarm::db::DbConn::Pg(pg) = &mut *c else {
            unreachable!()
        };
        #[derive(QueryableByName)]
        struct Name {
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
        }
        diesel::sql_query("SELECT current_database() AS name")
            .get_result::<Name>(pg)
            .unwrap()
            .name
    };
    let mut admin = PgConnection::establish("postgres://postgres@127.0.0.1:5432/postgres").unwrap();
    for round in 0..3 {
        diesel::sql_query(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ))
        .execute(&mut admin)
        .unwrap();
        // A connection opened at the moment of the kill fails to open: the pool then takes
        // the database for down and answers 503 until its next probe (every 250 ms). So the
        // rule is: only 200 or 503, and served again within two seconds.
        let mut statuses = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let (status, _) = app
                .post("/apiglobal/check_session", &[("session", &session)])
                .await;
            statuses.push(status);
            if (statuses.len() >= 6 && status == 200) || std::time::Instant::now() > deadline {
                break;
            }
            if status != 200 {
                actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        assert!(
            statuses.iter().all(|s| [200, 503].contains(s)),
            "round {round}: {statuses:?}"
        );
        assert_eq!(statuses.last(), Some(&200), "round {round}: {statuses:?}");
    }
    app.stop().await;
}
