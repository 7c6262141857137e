//! The worker as a real process: killed with SIGKILL mid-job, stopped with SIGTERM, and running
//! through a Postgres restart (on a private cluster, never the machine's shared one).

mod common;

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use common::{config, count, eventually, wait_state, InProcess, Process};
use wharf_shared::{
    db,
    jobs::{builtin::DiagSleep, enqueue, enqueue_many, NewJob},
    testing::TestDb,
};

#[tokio::test]
async fn killed_worker_jobs_are_rescued_and_completed_elsewhere() {
    let db = TestDb::new().await;
    let fast_lease = [
        ("WORKER_LEASE_SECS", "1.5"),
        ("WORKER_RESCUE_INTERVAL_SECS", "0.5"),
    ];
    let mut doomed = Process::spawn(&db.url, &fast_lease);
    let ids = enqueue_many(
        &db.pool,
        (0..6)
            .map(|_| NewJob::new(DiagSleep { ms: 3_000 }))
            .collect(),
    )
    .await
    .unwrap();
    eventually(
        Duration::from_secs(20),
        "the first worker to take every job",
        || async {
            (count(
                &db.pool,
                "SELECT count(*) FROM jobs WHERE state = 'running'",
            )
            .await
                == 6)
                .then_some(())
        },
    )
    .await;
    let first_owner: String = sqlx::query_scalar("SELECT DISTINCT attempted_by FROM jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    doomed.kill9();

    let _rescuer = Process::spawn(&db.url, &fast_lease);
    for &id in &ids {
        wait_state(&db.pool, id, "completed", Duration::from_secs(30)).await;
    }
    let rows: Vec<(i32, String, serde_json::Value)> =
        sqlx::query_as("SELECT attempt, attempted_by, errors FROM jobs ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 6, "no job lost, none duplicated");
    for (attempt, owner, errors) in rows {
        assert_eq!(attempt, 2, "rescued once");
        assert_ne!(owner, first_owner, "completed by the other worker");
        assert!(
            errors[0]["error"]
                .as_str()
                .unwrap_or("")
                .contains("lease expired"),
            "{errors}"
        );
    }
}

#[tokio::test]
async fn sigterm_lets_in_flight_jobs_finish_and_leaves_nothing_running() {
    let db = TestDb::new().await;
    let mut worker = Process::spawn(
        &db.url,
        &[
            ("WORKER_CONCURRENCY", "bulk=4"),
            ("WORKER_SHUTDOWN_GRACE_SECS", "20"),
        ],
    );
    let ids = enqueue_many(
        &db.pool,
        (0..12)
            .map(|_| NewJob::new(DiagSleep { ms: 1_500 }))
            .collect(),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(20), "four jobs running", || async {
        (count(
            &db.pool,
            "SELECT count(*) FROM jobs WHERE state = 'running'",
        )
        .await
            == 4)
            .then_some(())
    })
    .await;
    worker.sigterm();
    assert!(
        worker.wait_exit(Duration::from_secs(25)).await,
        "clean exit"
    );

    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM jobs WHERE state = 'running'"
        )
        .await,
        0
    );
    let completed = count(
        &db.pool,
        "SELECT count(*) FROM jobs WHERE state = 'completed'",
    )
    .await;
    assert!(completed >= 4, "the in-flight jobs finished ({completed})");
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM jobs WHERE state = 'available' AND attempt = 0"
        )
        .await,
        12 - completed,
        "the rest were never started"
    );
    assert_eq!(ids.len(), 12);
}

#[tokio::test]
async fn sigterm_hands_back_jobs_that_outlive_the_grace_period() {
    let db = TestDb::new().await;
    let mut worker = Process::spawn(&db.url, &[("WORKER_SHUTDOWN_GRACE_SECS", "0.5")]);
    let id = enqueue(&db.pool, NewJob::new(DiagSleep { ms: 60_000 }))
        .await
        .unwrap()
        .unwrap();
    wait_state(&db.pool, id, "running", Duration::from_secs(20)).await;
    worker.sigterm();
    assert!(
        worker.wait_exit(Duration::from_secs(10)).await,
        "clean exit"
    );
    let (state, attempt, errors): (String, i32, serde_json::Value) =
        sqlx::query_as("SELECT state, attempt, errors FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        (state.as_str(), attempt),
        ("available", 0),
        "handed back without spending the attempt"
    );
    assert_eq!(errors, serde_json::json!([]));
}

/// A throw-away Postgres cluster we may restart at will.
struct PrivatePostgres {
    dir: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("wharf-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        run("chown", &["postgres:postgres", dir.to_str().unwrap()]);
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Self { dir, port };
        pg.as_postgres(&[
            "/usr/lib/postgresql/15/bin/initdb",
            "-D",
            pg.data(),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        ]);
        pg.ctl(&["start"]);
        pg
    }

    fn data(&self) -> &str {
        self.dir.to_str().unwrap_or_default()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/wharf", self.port)
    }

    fn ctl(&self, action: &[&str]) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.data()
        );
        let log = Path::new(self.data())
            .join("log")
            .to_string_lossy()
            .to_string();
        let mut args = vec![
            "/usr/lib/postgresql/15/bin/pg_ctl",
            "-D",
            self.data(),
            "-o",
            &opts,
            "-l",
            &log,
            "-w",
        ];
        args.extend_from_slice(action);
        self.as_postgres(&args);
    }

    fn as_postgres(&self, args: &[&str]) {
        let mut full = vec!["-u", "postgres", "--"];
        full.extend_from_slice(args);
        run("runuser", &full);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                "/usr/lib/postgresql/15/bin/pg_ctl",
                "-D",
                self.data(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn workers_survive_a_postgres_restart_and_finish_the_work() {
    let pg = PrivatePostgres::start();
    let url = pg.url();
    db::ensure_database(&url).await.unwrap();
    let pool = db::lazy_pool(&url, Default::default()).unwrap();
    db::migrate(&pool).await.unwrap();

    let settings = [
        ("WORKER_CONCURRENCY", "bulk=4"),
        ("WORKER_LEASE_SECS", "10"),
    ];
    let a = InProcess::start(config(&url, &settings));
    let b = InProcess::start(config(&url, &settings));
    let ids = enqueue_many(
        &pool,
        (0..200)
            .map(|_| NewJob::new(DiagSleep { ms: 100 }))
            .collect(),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(10), "work to be under way", || async {
        (count(&pool, "SELECT count(*) FROM jobs WHERE state = 'completed'").await >= 20)
            .then_some(())
    })
    .await;

    let restart = tokio::task::spawn_blocking({
        let data = pg.data().to_string();
        let port = pg.port;
        move || {
            let opts = format!("-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off");
            let log = format!("{data}/log");
            run(
                "runuser",
                &[
                    "-u",
                    "postgres",
                    "--",
                    "/usr/lib/postgresql/15/bin/pg_ctl",
                    "-D",
                    &data,
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                ],
            );
            std::thread::sleep(Duration::from_secs(2));
            run(
                "runuser",
                &[
                    "-u",
                    "postgres",
                    "--",
                    "/usr/lib/postgresql/15/bin/pg_ctl",
                    "-D",
                    &data,
                    "-o",
                    &opts,
                    "-l",
                    &log,
                    "-w",
                    "start",
                ],
            );
        }
    });
    restart.await.unwrap();
    assert!(
        !a.task.is_finished() && !b.task.is_finished(),
        "workers are still running"
    );

    eventually(
        Duration::from_secs(60),
        "all 200 jobs to complete after the restart",
        || async {
            let done: Result<i64, _> =
                sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'completed'")
                    .fetch_one(&pool)
                    .await;
            (done.ok() == Some(ids.len() as i64)).then_some(())
        },
    )
    .await;
    a.shutdown().await;
    b.shutdown().await;
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM jobs WHERE state <> 'completed'"
        )
        .await,
        0
    );
    pool.close().await;
}
