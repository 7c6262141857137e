//! Test support (feature `testing`). One database per test, cloned from a migrated template, dropped when the test ends.
//!
//! The template is named after a hash of the migrations, so a changed migration gets a fresh
//! template and stale ones never hide a broken migration. Cloning a template takes tens of
//! milliseconds, so every test can afford its own database and tests run in parallel.

use std::sync::OnceLock;

use crate::db::{self, PoolSettings, MIGRATOR};
use sqlx::{Connection, Executor, PgConnection, PgPool};

/// Where tests create their databases. Override with `TEST_DATABASE_URL`.
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// `server_url` with another database name.
pub fn url_for(database: &str) -> String {
    let base = server_url();
    let (head, _) = base
        .rsplit_once('/')
        .expect("TEST_DATABASE_URL has a database path");
    format!("{head}/{database}")
}

fn template_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for m in MIGRATOR.iter() {
            m.version.hash(&mut h);
            m.checksum.hash(&mut h);
        }
        format!("wharf_tpl_{:016x}", h.finish())
    })
}

async fn admin_connection() -> PgConnection {
    PgConnection::connect(&server_url()).await.expect(
        "tests need PostgreSQL at TEST_DATABASE_URL (default 127.0.0.1:5432, user postgres)",
    )
}

async fn ensure_template() {
    let mut conn = admin_connection().await;
    // Serialise template creation across the test processes that nextest or cargo start.
    conn.execute("SELECT pg_advisory_lock(727274)")
        .await
        .unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(template_name())
            .fetch_one(&mut conn)
            .await
            .unwrap();
    if !exists {
        let building = format!("{}_building", template_name());
        conn.execute(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)").as_str())
            .await
            .unwrap();
        conn.execute(format!("CREATE DATABASE {building}").as_str())
            .await
            .unwrap();
        let pool = PgPool::connect(&url_for(&building)).await.unwrap();
        db::migrate(&pool)
            .await
            .expect("migrations apply to an empty database");
        pool.close().await;
        // A closed pool's backends leave the server a moment later; until they have, the
        // rename fails with "being accessed by other users".
        let rename = format!("ALTER DATABASE {building} RENAME TO {}", template_name());
        let mut tries = 0;
        while let Err(e) = conn.execute(rename.as_str()).await {
            tries += 1;
            assert!(tries < 100, "rename the test template: {e}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    conn.execute("SELECT pg_advisory_unlock(727274)")
        .await
        .unwrap();
    let _ = conn.close().await;
}

/// A migrated database private to one test. Dropped (forcefully) when this value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn new() -> Self {
        ensure_template().await;
        let name = format!("wharf_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin_connection().await;
        conn.execute(format!("CREATE DATABASE {name} TEMPLATE {}", template_name()).as_str())
            .await
            .expect("clone the test template");
        let _ = conn.close().await;
        let url = url_for(&name);
        let pool = db::lazy_pool(
            &url,
            PoolSettings {
                max_connections: 4,
                ..Default::default()
            },
        )
        .expect("valid test database url");
        Self { name, url, pool }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime; the cleanup gets a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&server_url()).await {
                    let _ = conn
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                }
            });
        })
        .join();
    }
}
