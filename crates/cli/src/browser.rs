//! Headless Chromium driven over WebDriver (`fantoccini` against the system `chromedriver`):
//! the explorer's browser test (`tests/explorer.rs`) and `chipledger bench explorer` share it.
//!
//! Every call is synchronous: a [`Browser`] owns a private single-threaded tokio runtime and
//! blocks on it, so callers stay plain threads like the other process tests and benchmarks.
//! Needs the Debian packages `chromium` and `chromium-driver` ([`check_installed`] says so).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use fantoccini::{Client as WebDriver, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// How long a page may take to show what a caller waits for (pages poll the API themselves).
pub const PAGE_WAIT: Duration = Duration::from_secs(30);
/// How long chromedriver may take to listen.
pub const DRIVER_WAIT: Duration = Duration::from_secs(20);
/// How often [`Browser::wait`] polls.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// The Chromium binary (Debian package `chromium`).
pub const CHROMIUM_PATH: &str = "/usr/bin/chromium";
/// Where Debian's `chromium-driver` puts chromedriver (the first that exists is used).
const DRIVER_PATHS: [&str; 2] = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];
/// What to install when the browser is missing.
pub const INSTALL_HINT: &str = "apt-get install chromium chromium-driver";

/// Fails with a message naming the Debian packages unless Chromium and chromedriver are present.
pub fn check_installed() -> Result<()> {
    let chromium = PathBuf::from(CHROMIUM_PATH).exists();
    let driver = DRIVER_PATHS.iter().any(|p| PathBuf::from(p).exists()) || on_path("chromedriver");
    if !chromium || !driver {
        let missing: Vec<&str> = [(!chromium).then_some("chromium"), (!driver).then_some("chromedriver")]
            .into_iter()
            .flatten()
            .collect();
        bail!(
            "{} not found: install the Debian packages `chromium` and `chromium-driver` ({INSTALL_HINT})",
            missing.join(" and ")
        );
    }
    Ok(())
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
}

/// `chromedriver` on a free port; killed when dropped.
pub struct Chromedriver {
    child: Child,
    /// The driver's WebDriver endpoint, `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Chromedriver {
    /// Starts chromedriver on a free loopback port and waits until it listens.
    pub fn start() -> Result<Chromedriver> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(driver_path())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting chromedriver ({INSTALL_HINT})"))?;
        let driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > DRIVER_WAIT {
                bail!("chromedriver did not listen on {port} within {DRIVER_WAIT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(driver)
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The chromedriver binary: Debian's paths first, else `chromedriver` on `PATH`.
pub fn driver_path() -> PathBuf {
    DRIVER_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("chromedriver"))
}

/// One headless Chromium session; its calls run on a private runtime, so callers stay
/// synchronous.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    /// The WebDriver session, for calls this type does not wrap (run them with [`Browser::block`]).
    pub wd: WebDriver,
    /// The session's `/se/log` endpoint (chromedriver's browser console log).
    log_url: String,
    /// Kept for its `Drop` (stops chromedriver after the session ended).
    _driver: Chromedriver,
    http: reqwest::blocking::Client,
}

impl Browser {
    /// A new session in a `width` × `height` window, with the browser console log enabled.
    pub fn start((width, height): (u32, u32)) -> Result<Browser> {
        let driver = Chromedriver::start()?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let caps = json!({
            "browserName": "chrome",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": CHROMIUM_PATH,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    format!("--window-size={width},{height}"),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            bail!("capabilities")
        };
        let wd = rt
            .block_on(
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(caps)
                    .connect(&driver.url),
            )
            .context("a WebDriver session")?;
        let session = rt.block_on(wd.session_id())?.context("session id")?;
        let log_url = format!("{}/session/{session}/se/log", driver.url);
        Ok(Browser {
            rt,
            wd,
            log_url,
            _driver: driver,
            http: reqwest::blocking::Client::new(),
        })
    }

    /// Runs one WebDriver future to completion.
    pub fn block<T, E: std::error::Error + Send + Sync + 'static>(
        &self,
        f: impl std::future::Future<Output = std::result::Result<T, E>>,
    ) -> Result<T> {
        Ok(self.rt.block_on(f)?)
    }

    /// Loads `route` (a fresh document each time) and waits for `page-<page>`.
    pub fn open(&self, base: &str, route: &str, page: &str) -> Result<()> {
        self.block(self.wd.goto("about:blank"))?;
        self.block(self.wd.goto(&format!("{base}/{route}")))?;
        let css = format!("[data-test=page-{page}]");
        let state = self.wait(&format!("{css} ready on {route}"), || {
            let Some(root) = self.block(self.wd.find_all(Locator::Css(&css)))?.into_iter().next() else {
                return Ok(None);
            };
            let state = self.block(root.attr("data-state"))?.unwrap_or_default();
            Ok((state != "loading").then_some((state, root)))
        })?;
        match state {
            (s, _) if s == "ready" => Ok(()),
            (s, root) => bail!("{route}: page state {s}: {}", self.block(root.text())?),
        }
    }

    /// Polls until `f` returns `Some` (at most [`PAGE_WAIT`]).
    pub fn wait<T>(&self, what: &str, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
        let started = Instant::now();
        loop {
            if let Some(v) = f()? {
                return Ok(v);
            }
            if started.elapsed() > PAGE_WAIT {
                bail!("timed out after {PAGE_WAIT:?} waiting for {what}");
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// The text of the first element matching `css` once `ok` holds for it.
    pub fn wait_text(&self, what: &str, css: &str, ok: impl Fn(&str) -> bool) -> Result<String> {
        let mut last = String::new();
        let found = self.wait(what, || {
            let Some(el) = self.block(self.wd.find_all(Locator::Css(css)))?.into_iter().next() else {
                return Ok(None);
            };
            last = self.block(el.text())?;
            Ok(ok(&last).then(|| last.clone()))
        });
        found.with_context(|| format!("{css} last read: {last:?}"))
    }

    /// Runs `script` in the page with `args` (a JSON array); returns its value.
    pub fn execute(&self, script: &str, args: Value) -> Result<Value> {
        let Value::Array(args) = args else {
            bail!("script arguments")
        };
        self.block(self.wd.execute(script, args))
    }

    /// Runs an asynchronous `script` (its last argument is the callback that returns the value).
    pub fn execute_async(&self, script: &str, args: Value) -> Result<Value> {
        let Value::Array(args) = args else {
            bail!("script arguments")
        };
        self.block(self.wd.execute_async(script, args))
    }

    /// Resizes the window.
    pub fn set_size(&self, (width, height): (u32, u32)) -> Result<()> {
        self.block(self.wd.set_window_size(width, height))
    }

    /// Screenshot to `target/explorer-screenshots/<name>.png`; no console error so far and no
    /// error box on the page (a section that could not be shown), else an error naming them.
    pub fn finish_page(&self, name: &str) -> Result<()> {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        let png = self.block(self.wd.screenshot())?;
        std::fs::write(dir.join(format!("{name}.png")), png)?;
        let errors = self.console_errors()?;
        ensure!(errors.is_empty(), "console errors on {name}: {errors:#?}");
        let boxes = self.block(self.wd.find_all(Locator::Css("main .error")))?;
        let mut shown = Vec::new();
        for b in boxes {
            shown.push(self.block(b.text())?);
        }
        ensure!(shown.is_empty(), "error boxes on {name}: {shown:#?}");
        Ok(())
    }

    /// The console check sees what a page logs: a `console.error`, an uncaught exception and an
    /// unhandled rejection are each reported.
    pub fn probe_console(&self) -> Result<()> {
        self.console_errors()?;
        let probes = ["probe-console-error", "probe-uncaught", "probe-rejection"];
        self.execute(
            "console.error(arguments[0]); \
             setTimeout(() => { throw new Error(arguments[1]); }); \
             Promise.reject(new Error(arguments[2]));",
            json!(probes),
        )?;
        let mut seen = Vec::new();
        self.wait("the probes in the console log", || {
            seen.extend(self.console_errors()?);
            Ok(probes.iter().all(|p| seen.iter().any(|s| s.contains(p))).then_some(()))
        })
        .with_context(|| format!("the console log does not report errors: {seen:?}"))?;
        ensure!(seen.len() == probes.len(), "unexpected console entries: {seen:?}");
        Ok(())
    }

    /// Errors (`SEVERE` entries) in the browser's console log since the last call.
    pub fn console_errors(&self) -> Result<Vec<String>> {
        let log: Value = self
            .http
            .post(&self.log_url)
            .json(&json!({ "type": "browser" }))
            .send()?
            .error_for_status()?
            .json()?;
        let entries = log["value"].as_array().cloned().unwrap_or_default();
        Ok(entries
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect())
    }
}

impl Drop for Browser {
    /// Ends the session (Chromium quits), also when a check failed; then `_driver` goes.
    fn drop(&mut self) {
        let _ = self.rt.block_on(self.wd.clone().close());
    }
}

/// The workspace's `target/explorer-screenshots` (not the shared cargo target dir).
pub fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/explorer-screenshots")
}
