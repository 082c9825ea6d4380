//! A real headless Chromium for page tests, driven over WebDriver: scripts/test.sh
//! installs Debian's chromium and chromium-driver and names them in
//! `FLEET_TEST_CHROMEDRIVER` and `FLEET_TEST_CHROMIUM`. Each [`Browser`] starts its own
//! chromedriver on a free port with a fresh profile, and writes screenshots under
//! `target/test-output/<name>/`, for a person to look at.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub use fantoccini::{elements::Element, Client, Locator};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through scripts/test.sh, which installs Chromium and its driver")
    })
}

/// A headless Chromium session, with its driver; both end when dropped.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
    taken: usize,
}

impl Browser {
    /// Starts Chromium at `width`×`height`, its screenshots going to
    /// `target/test-output/<name>/`.
    pub async fn start(name: &str, width: u32, height: u32) -> Browser {
        let driver_bin = var("FLEET_TEST_CHROMEDRIVER");
        let chromium = var("FLEET_TEST_CHROMIUM");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {driver_bin}: {e}"));
        let profile = tempfile::tempdir().expect("a profile directory");
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let caps = match caps {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match fantoccini::ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no WebDriver session from {driver_bin} within 30 s: {e}"),
            }
        };
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/test-output")
            .join(name);
        // Last run's screenshots would pass for this run's.
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).expect("the screenshot directory");
        Browser {
            client,
            driver,
            _profile: profile,
            shots,
            taken: 0,
        }
    }

    /// Saves a screenshot of the page as `NN-<what>.png`; its path.
    pub async fn shot(&mut self, what: &str) -> PathBuf {
        self.taken += 1;
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = self.shots.join(format!("{:02}-{what}.png", self.taken));
        std::fs::write(&path, png).expect("writing the screenshot");
        path
    }

    /// Saves a screenshot of the element `css` selects as `NN-<what>.png`; its path.
    pub async fn shot_of(&mut self, css: &str, what: &str) -> PathBuf {
        self.taken += 1;
        let png = self
            .find(css)
            .await
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("a screenshot of {css}: {e}"));
        let path = self.shots.join(format!("{:02}-{what}.png", self.taken));
        std::fs::write(&path, png).expect("writing the screenshot");
        path
    }

    /// The element `css` selects, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Types `text` into the field `css` selects.
    pub async fn fill(&self, css: &str, text: &str) {
        self.find(css)
            .await
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    /// Chooses `value` in the select `css` selects.
    pub async fn choose(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("choosing {value} in {css}: {e}"));
    }

    /// Clicks what `css` selects.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Clicks what `css` selects and waits up to 10 s for the page it loads: without
    /// the wait, a following `find` can pick the same selector off the old page.
    pub async fn submit(&self, css: &str) {
        self.client
            .execute("window.__fleet_old_page = true;", vec![])
            .await
            .unwrap_or_else(|e| panic!("marking the page before {css}: {e}"));
        self.click(css).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            // A script error here means the old page is going away: keep waiting.
            let loaded = self
                .client
                .execute(
                    "return !window.__fleet_old_page && document.readyState === 'complete';",
                    vec![],
                )
                .await
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            if loaded {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "clicking {css} loaded no new page within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.find("body")
            .await
            .text()
            .await
            .expect("the page's text")
    }

    /// Ends the session.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
