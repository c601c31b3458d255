//! More requests at once than the database has connections: they wait for a connection in a
//! bounded queue (`database.max_waiting`, 64 here), not each in a thread of its own; the overflow is refused
//! at once with 503 and every waiting request is served when a connection comes free.

use crate::common::{Db, TestApp};

crate::backend_cases!(requests_past_the_wait_queue_are_refused_and_the_rest_served);

async fn requests_past_the_wait_queue_are_refused_and_the_rest_served(db: Db) {
    let Some(app) = TestApp::start(
        db,
        &[
            ("PRINTFARM_DATABASE__POOL_SIZE", "1"),
            ("PRINTFARM_DATABASE__MAX_WAITING", "64"),
        ],
    )
    .await
    else {
        return;
    };
    let session = app.login_new_user("queue@faults.test").await;
    // The pool's only connection, taken by the test: every request has to wait for it.
    let held = app.conn();
    const SENT: usize = 200;
    let mut calls = Vec::new();
    for _ in 0..SENT {
        let (client, url, session) = (
            app.client.clone(),
            app.url("/apiglobal/check_session"),
            session.clone(),
        );
        calls.push(actix_web::rt::spawn(async move {
            let res = client
                .post(url)
                .form(&[("session", session.as_str())])
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.text().await.unwrap())
        }));
    }
    // The queue fills (a background task may hold a place too); the rest are refused at once.
    // Under load the last requests may still be on their way once the counts look right, so
    // the refusals must also have stopped growing (half a second) before the release.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let (mut last, mut steady_since) = (u64::MAX, std::time::Instant::now());
    loop {
        let refused = app.state.pool.turned_away();
        if refused != last {
            (last, steady_since) = (refused, std::time::Instant::now());
        }
        let settled = app.state.pool.waiting() >= 60
            && refused >= 130
            && steady_since.elapsed() >= std::time::Duration::from_millis(500);
        if settled || std::time::Instant::now() >= deadline {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let refused_while_held = app.state.pool.turned_away();
    drop(held);
    let mut served = 0;
    let mut refused = 0;
    for call in calls {
        let (status, body) = call.await.unwrap();
        match status {
            200 => served += 1,
            503 => {
                assert!(body.contains("busy"), "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(served + refused, SENT);
    // 1 connection: 1 request at the connection and 64 waiting, less the places background
    // work held; everything else answered 503 while the connection was held.
    assert!(
        (130..=SENT - 64 - 1).contains(&refused),
        "refused {refused}, served {served}"
    );
    assert_eq!(
        refused as u64, refused_while_held,
        "refusals after the release"
    );
    assert_eq!(app.state.pool.waiting(), 0);
    // And the server is itself again.
    let (status, _) = app
        .post("/apiglobal/check_session", &[("session", &session)])
        .await;
    assert_eq!(status, 200);
    app.stop().await;
}
