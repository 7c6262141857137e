//! A headless Chromium per test, driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`; `./dev test` installs them). Each [`Browser`] runs its own chromedriver
//! on a free port and a fresh profile, and kills both when dropped.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use serde_json::json;

/// Browsers are heavy on two cores: at most this many at once in the binary.
static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

pub struct Browser {
    pub client: Client,
    pub base_url: String,
    driver: Child,
    _profile: tempdir::Dir,
    _slot: tokio::sync::SemaphorePermit<'static>,
}

mod tempdir {
    /// A directory removed on drop (a Chromium profile).
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Where screenshots go: `target/console-screenshots/` (a test artefact, not committed).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("console-screenshots")
}

impl Browser {
    /// A 1280 × 900 window on `base_url` (the test app).
    pub async fn start(base_url: &str) -> Self {
        Self::start_sized(base_url, 1280, 900).await
    }

    pub async fn start_sized(base_url: &str, width: u32, height: u32) -> Self {
        let slot = SLOTS.acquire().await.expect("semaphore open");
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver runs (apt-get install chromium chromium-driver; ./dev test does)",
            );
        let profile = std::env::temp_dir().join(format!("wharf-chromium-{}", uuid::Uuid::new_v4()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-extensions",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("chromium did not start under chromedriver: {e}"),
            }
        };
        Self {
            client,
            base_url: base_url.to_string(),
            driver,
            _profile: tempdir::Dir(profile),
            _slot: slot,
        }
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{}", self.base_url, path))
            .await
            .expect("page loads");
    }

    /// The current path and query.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    pub async fn exists(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    pub async fn text(&self, css: &str) -> String {
        // A live region may replace the element between finding and reading it: find again.
        for _ in 0..20 {
            if let Ok(t) = self.find(css).await.text().await {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} kept going stale");
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let el = self.find(css).await;
        el.clear().await.expect("clear");
        el.send_keys(value).await.expect("type");
    }

    /// Clicks `css`. When the click loads a new page (a link, or a button that submits a
    /// form), waits until the new page has loaded, so what the test reads next is the page the
    /// click led to, never the one it left.
    pub async fn click(&self, css: &str) {
        let el = self.find(css).await;
        let arg = serde_json::to_value(&el).expect("element reference");
        let navigates = self
            .client
            .execute(
                "const el = arguments[0]; window.__wharfLeaving = true;
                 return !!(el.closest('a[href]') || (el.form && (el.type === 'submit' || el.tagName === 'BUTTON' && !el.type)));",
                vec![arg],
            )
            .await
            .expect("script runs")
            .as_bool()
            .unwrap_or(false);
        el.click().await.expect("click");
        if navigates {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let done = self
                    .client
                    .execute(
                        "return window.__wharfLeaving !== true && document.readyState === 'complete';",
                        vec![],
                    )
                    .await
                    .ok()
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false);
                if done {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "clicking {css} never loaded a page"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// The whole page's visible text.
    pub async fn body_text(&self) -> String {
        self.text("body").await
    }

    /// Waits until `css`'s text satisfies `ok` (live regions, SSE), up to `timeout`.
    pub async fn wait_text(
        &self,
        css: &str,
        timeout: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(el) => el.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if ok(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never satisfied the condition; last text: {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Signs in through the form; returns the path the browser lands on.
    pub async fn sign_in(&self, email: &str, password: &str) -> String {
        self.goto("/console/login").await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.click("#sign-in").await;
        self.find("body").await;
        self.path().await
    }

    /// Saves a PNG of the page as `target/console-screenshots/{name}.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot written");
    }

    /// Resizes the window (390 px: a phone) and reports whether the page scrolls sideways as
    /// a whole (tables scroll inside their own box instead).
    pub async fn overflows_at(&self, width: u32) -> bool {
        self.client
            .set_window_size(width, 900)
            .await
            .expect("resize");
        let v = self
            .client
            .execute(
                "return document.documentElement.scrollWidth > document.documentElement.clientWidth + 1;",
                vec![],
            )
            .await
            .expect("script runs");
        v.as_bool().unwrap_or(true)
    }

    /// The CSRF token the page carries (for tests that post by hand).
    pub async fn csrf(&self) -> String {
        self.find("main[data-csrf]")
            .await
            .attr("data-csrf")
            .await
            .expect("attr")
            .expect("csrf present")
    }

    /// The console session cookie, to replay requests outside the browser.
    pub async fn session_cookie(&self) -> String {
        let c = self
            .client
            .get_named_cookie("wharf_console")
            .await
            .expect("session cookie set");
        format!("wharf_console={}", c.value())
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
