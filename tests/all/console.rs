//! The web console in a real browser: Debian's Chromium, headless, driven
//! over WebDriver (chromedriver) against the server on a loopback port.
//! Signs in, filters and opens anomalies, changes an agent as a tenant
//! admin and is refused as read-only, meets another tenant's anomaly and a
//! form without its CSRF token; saves a screenshot of every page at laptop
//! and phone widths (target/console-artifacts/screenshots) and checks every
//! page's HTML with html-validate (scripts/console_tools.sh installs both).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use fantoccini::{Client, ClientBuilder, Locator};
use mcp_api::Role;
use mcp_storage::jobstatus::SharedCache;
use serde_json::json;

use crate::api::{Api, api_configured};

const LAPTOP: (u32, u32) = (1366, 900);
const PHONE: (u32, u32) = (390, 844);

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/console-artifacts")
}

fn tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/console-tools")
}

const INSTALL_HINT: &str =
    "run `bash scripts/console_tools.sh` (Debian's chromium and chromium-driver, and the HTML validator)";

/// chromedriver on a free loopback port, ended when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> anyhow::Result<Driver> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow!("chromedriver did not start ({e}): {INSTALL_HINT}"))?;
    let driver = Driver { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        ensure!(Instant::now() < deadline, "chromedriver did not listen on port {port} within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(driver)
}

async fn browser(driver: &Driver) -> anyhow::Result<Client> {
    let mut options = json!({
        "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--force-device-scale-factor=1", format!("--window-size={},{}", LAPTOP.0, LAPTOP.1)]
    });
    if Path::new("/usr/bin/chromium").exists() {
        options["binary"] = json!("/usr/bin/chromium");
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    // WebDriver on loopback is plain HTTP: no TLS stack to pick.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .with_context(|| format!("Chromium did not start under chromedriver: {INSTALL_HINT}"))?;
    Ok(client)
}

/// Runs `work` (a call into the in-process API, which blocks on the
/// server's runtime) on a thread of its own, outside the browser's runtime.
fn outside<T: Send>(work: impl FnOnce() -> anyhow::Result<T> + Send) -> anyhow::Result<T> {
    std::thread::scope(|scope| scope.spawn(work).join().map_err(|_| anyhow!("an API call panicked"))?)
}

/// Every anomaly `query` matches through the API, counted page by page.
fn api_count(api: &Api, token: &str, query: &str) -> anyhow::Result<usize> {
    outside(|| api_count_here(api, token, query))
}

fn api_count_here(api: &Api, token: &str, query: &str) -> anyhow::Result<usize> {
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let uri = match &cursor {
            Some(c) => format!("/v1/anomalies?{query}&limit=1000&cursor={c}"),
            None => format!("/v1/anomalies?{query}&limit=1000"),
        };
        let reply = api.call("GET", &uri, Some(token), None)?;
        ensure!(reply.status == 200, "{uri}: {} {}", reply.status, reply.body);
        count += reply.body["items"].as_array().map_or(0, Vec::len);
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return Ok(count),
        }
    }
}

/// The text of the element `css`, waiting up to 10 s for it: after a
/// click that submits a form, the page it answers may not have loaded yet,
/// or may replace the page while the element is read (a CI run under load
/// found both).
async fn text(client: &Client, css: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let read = match client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await,
            Err(error) => Err(error),
        };
        match read {
            Ok(text) => return Ok(text),
            Err(error) if Instant::now() < deadline => {
                let message = error.to_string();
                if !(message.contains("no such element") || message.contains("stale element")) {
                    return Err(error.into());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => return Err(anyhow::Error::from(error).context(format!("no element {css} within 10 s"))),
        }
    }
}

/// Waits up to 10 s until the browser shows a loaded page whose URL holds
/// `part`: the page a submitted form answered, not the one it was on.
async fn wait_for_url_with(client: &Client, part: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if client.current_url().await?.as_str().contains(part)
            && client.execute("return document.readyState", vec![]).await? == json!("complete")
        {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "no loaded page with '{part}' in its URL within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sign_in(client: &Client, base: &str, token: &str) -> anyhow::Result<()> {
    client.goto(&format!("{base}/ui/")).await?;
    ensure!(client.current_url().await?.path() == "/ui/sign-in", "a visitor without a session is sent to sign in");
    client.find(Locator::Css("input[name=token]")).await?.send_keys(token).await?;
    client.find(Locator::Css("form.sign-in button[type=submit]")).await?.click().await?;
    client.wait().at_most(Duration::from_secs(10)).for_url(&url(base, "/ui/anomalies")?).await?;
    Ok(())
}

async fn sign_out(client: &Client) -> anyhow::Result<()> {
    client.find(Locator::XPath("//button[normalize-space()='Sign out']")).await?.click().await?;
    client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("form.sign-in")).await?;
    Ok(())
}

fn url(base: &str, path: &str) -> anyhow::Result<url::Url> {
    Ok(url::Url::parse(&format!("{base}{path}"))?)
}

/// POSTs a form from inside the page (as a hand-made request would), with
/// `body` as sent; the final answer's status and path, redirects followed.
async fn post_from_page(client: &Client, path: &str, body: &str) -> anyhow::Result<(u64, String)> {
    let script = r#"
        const [path, body, done] = arguments;
        fetch(path, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body })
            .then(r => done([r.status, new URL(r.url).pathname]), e => done([0, String(e)]));
    "#;
    let answer = client.execute_async(script, vec![json!(path), json!(body)]).await?;
    let status = answer[0].as_u64().unwrap_or(0);
    let at = answer[1].as_str().unwrap_or_default().to_string();
    ensure!(status > 0, "the request did not complete: {answer}");
    Ok((status, at))
}

/// The page's CSRF token, as its sign-out form carries it.
async fn page_csrf(client: &Client) -> anyhow::Result<String> {
    let value = client.find(Locator::Css("input[name=csrf]")).await?.attr("value").await?;
    value.ok_or_else(|| anyhow!("the page has no CSRF field"))
}

fn agent_enabled(api: &Api, name: &str) -> anyhow::Result<bool> {
    let reply = call(api, "GET", &format!("/v1/agents/{name}"), api.token("alpha", Role::ReadOnly))?;
    reply["enabled"].as_bool().ok_or_else(|| anyhow!("no enabled flag: {reply}"))
}

/// An API call's JSON answer, which must be a success.
fn call(api: &Api, method: &str, uri: &str, token: &str) -> anyhow::Result<serde_json::Value> {
    outside(|| {
        let reply = api.call(method, uri, Some(token), None)?;
        ensure!(reply.status.is_success(), "{uri}: {} {}", reply.status, reply.body);
        Ok(reply.body)
    })
}

/// Saves `path`'s screenshot at both widths and its HTML as the server
/// sends it to this session, for the validator.
async fn capture(client: &Client, api: &Api, base: &str, name: &str, path: &str) -> anyhow::Result<()> {
    let shots = artifacts().join("screenshots");
    let pages = artifacts().join("pages");
    std::fs::create_dir_all(&shots)?;
    std::fs::create_dir_all(&pages)?;
    client.goto(&format!("{base}{path}")).await?;
    for (width_name, (width, height)) in [("laptop", LAPTOP), ("phone", PHONE)] {
        client.set_window_size(width, height).await?;
        let png = client.screenshot().await?;
        std::fs::write(shots.join(format!("{name}-{width_name}.png")), png)?;
    }
    client.set_window_size(LAPTOP.0, LAPTOP.1).await?;
    let cookie = match client.get_named_cookie("mcp_session").await {
        Ok(cookie) => format!("mcp_session={}", cookie.value()),
        Err(_) => String::new(),
    };
    let (_, html) = outside(|| api.get_with(path, &[("cookie", &cookie)]))?;
    std::fs::write(pages.join(format!("{name}.html")), html)?;
    Ok(())
}

fn validate_pages() -> anyhow::Result<()> {
    let validator = tools().join("node_modules/.bin/html-validate");
    ensure!(validator.exists(), "{} is missing: {INSTALL_HINT}", validator.display());
    let pages: Vec<PathBuf> = std::fs::read_dir(artifacts().join("pages"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .collect();
    ensure!(pages.len() >= 9, "expected every page saved, found {}", pages.len());
    let output =
        Command::new(&validator).arg("--config").arg(tools().join(".htmlvalidate.json")).args(&pages).output()?;
    if !output.status.success() {
        bail!(
            "html-validate found problems:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

async fn walk(client: &Client, api: &Api, base: &str) -> anyhow::Result<()> {
    let admin = api.token("alpha", Role::TenantAdmin);
    client.goto(&format!("{base}/ui/sign-in")).await?;
    capture(client, api, base, "sign-in", "/ui/sign-in").await?;

    // A form without its CSRF token does not sign anyone in.
    let (status, _) = post_from_page(client, "/ui/sign-in", &format!("token={admin}")).await?;
    ensure!(status == 403, "sign-in without its CSRF token answered {status}");

    // A wrong token is refused on the page, and nothing is signed in.
    client.find(Locator::Css("input[name=token]")).await?.send_keys("mcp_not-a-token").await?;
    client.find(Locator::Css("form.sign-in button[type=submit]")).await?.click().await?;
    let alert = text(client, "p.error").await?;
    ensure!(alert.contains("not valid"), "a wrong token's message: {alert}");

    sign_in(client, base, admin).await?;
    ensure!(!client.current_url().await?.as_str().contains("mcp_"), "the token is never in a URL");
    let cookie = client.get_named_cookie("mcp_session").await?;
    ensure!(cookie.http_only() == Some(true), "the session cookie is HttpOnly");
    ensure!(
        format!("{:?}", cookie.same_site()) == "Some(Strict)",
        "the session cookie is SameSite=Strict: {:?}",
        cookie.same_site()
    );
    let visible_cookies = client.execute("return document.cookie", vec![]).await?;
    ensure!(
        !visible_cookies.as_str().unwrap_or("").contains("mcp_session"),
        "the page's script cannot read the session"
    );

    // Filter anomalies and see the API's count.
    let first = call(api, "GET", "/v1/anomalies?agent=firewall&limit=1", admin)?;
    let severity = first["items"][0]["severity"].as_str().context("alpha has firewall anomalies")?.to_string();
    client.find(Locator::Css("select[name=agent]")).await?.select_by_value("firewall").await?;
    client.find(Locator::Css("select[name=severity]")).await?.select_by_value(&severity).await?;
    client.find(Locator::XPath("//form[contains(@class,'filters')]//button[@type='submit']")).await?.click().await?;
    // The page before the filter has a count too: read the new page's.
    wait_for_url_with(client, "agent=firewall").await?;
    let shown: usize = text(client, "[data-count]").await?.trim().parse()?;
    let expected = api_count(api, admin, &format!("agent=firewall&severity={severity}"))?;
    ensure!(
        shown == expected && shown > 0,
        "the console counts {shown} {severity} firewall anomalies, the API {expected}"
    );
    let rows = client.find_all(Locator::Css("table.list tbody tr")).await?.len();
    ensure!(rows == expected.min(50), "{rows} rows on the first page of {expected}");
    let filtered_path = client.current_url().await?;
    let filtered_path = format!("{}?{}", filtered_path.path(), filtered_path.query().unwrap_or(""));

    // Open one: its reason and entry as the API has them.
    client.find(Locator::Css("table.list tbody tr a")).await?.click().await?;
    client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("dl.facts")).await?;
    let heading = text(client, "h1").await?;
    let id: i64 = heading.trim_start_matches("Anomaly ").parse().with_context(|| format!("heading {heading}"))?;
    let record = call(api, "GET", &format!("/v1/anomalies/{id}"), admin)?;
    let page_text = text(client, "main").await?;
    let reason = record["reason"].as_str().unwrap_or_default();
    ensure!(page_text.contains(reason), "the anomaly page shows its reason '{reason}'");
    ensure!(client.find(Locator::Css("pre.entry")).await.is_ok(), "the anomaly page shows the log entry");
    let back = client.find(Locator::LinkText("← Back to the list")).await?.attr("href").await?.unwrap_or_default();
    ensure!(back.contains(&format!("severity={severity}")), "the way back keeps the filters: {back}");
    let detail_path = format!("/ui/anomalies/{id}");

    // Another tenant's anomaly is not found, exactly as through the API.
    let theirs = call(api, "GET", "/v1/anomalies?limit=1", api.token("beta", Role::ReadOnly))?;
    let their_id = theirs["items"][0]["id"].as_i64().context("beta has anomalies")?;
    let not_found_path = format!("/ui/anomalies/{their_id}");
    client.goto(&format!("{base}{not_found_path}")).await?;
    ensure!(text(client, "h1").await? == "Not found", "another tenant's anomaly {their_id} is not found");

    // A tenant admin disables and enables an agent; a form without its
    // CSRF token changes nothing.
    client.goto(&format!("{base}/ui/agents")).await?;
    let (status, _) = post_from_page(client, "/ui/agents/firewall/disable", "").await?;
    ensure!(status == 403, "a form without its CSRF token answered {status}");
    let (status, _) = post_from_page(client, "/ui/agents/firewall/disable", "csrf=forged").await?;
    ensure!(status == 403, "a form with another CSRF token answered {status}");
    ensure!(agent_enabled(api, "firewall")?, "refused forms left the agent enabled");
    client.find(Locator::XPath("//button[normalize-space()='Disable firewall']")).await?.click().await?;
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//button[normalize-space()='Enable firewall']"))
        .await?;
    ensure!(!agent_enabled(api, "firewall")?, "the API sees the agent disabled");
    ensure!(text(client, "p.notice").await?.contains("disabled"), "the page says what the button did");
    client.find(Locator::XPath("//button[normalize-space()='Enable firewall']")).await?.click().await?;
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//button[normalize-space()='Disable firewall']"))
        .await?;
    ensure!(agent_enabled(api, "firewall")?, "the API sees the agent enabled again");

    // A run started from the console completes while the page watches.
    client.goto(&format!("{base}/ui/runs")).await?;
    client.find(Locator::Css("select[name=agent]")).await?.select_by_value("firewall").await?;
    client.find(Locator::XPath("//button[normalize-space()='Start a run']")).await?.click().await?;
    client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("tr[data-run] .state-completed"))
        .await
        .context("the started run shows as completed")?;

    for (name, path) in [
        ("anomalies", filtered_path.as_str()),
        ("anomaly", detail_path.as_str()),
        ("agents", "/ui/agents"),
        ("runs", "/ui/runs"),
        ("models", "/ui/models"),
        ("exports", "/ui/exports"),
        ("notifications", "/ui/notifications"),
        ("not-found", not_found_path.as_str()),
    ] {
        capture(client, api, base, name, path).await?;
    }

    // Read-only: no buttons to change an agent, and a hand-made form with
    // the session's own CSRF token is refused by the API's rule.
    client.goto(&format!("{base}/ui/anomalies")).await?;
    sign_out(client).await?;
    let (status, at) = post_from_page(client, "/ui/agents/firewall/disable", "csrf=x").await?;
    ensure!(
        status == 200 && at == "/ui/sign-in",
        "after signing out a form goes to sign in, answered {status} at {at}"
    );
    sign_in(client, base, api.token("alpha", Role::ReadOnly)).await?;
    client.goto(&format!("{base}/ui/agents")).await?;
    let buttons = client.find_all(Locator::XPath("//button[starts-with(normalize-space(),'Disable')]")).await?;
    ensure!(buttons.is_empty(), "a read-only session is offered no Disable button");
    let csrf = page_csrf(client).await?;
    let (status, _) = post_from_page(client, "/ui/agents/firewall/disable", &format!("csrf={csrf}")).await?;
    ensure!(status == 403, "a read-only session's disable answered {status}");
    ensure!(agent_enabled(api, "firewall")?, "the read-only session changed nothing");

    // Revoking the token through the API ends its console session at once.
    let tokens = call(api, "GET", "/v1/tokens", admin)?;
    let read_only_id = tokens
        .as_array()
        .and_then(|all| all.iter().find(|t| t["role"] == "read_only"))
        .and_then(|t| t["id"].as_i64())
        .context("alpha has a read_only token")?;
    outside(|| {
        let reply = api.call("DELETE", &format!("/v1/tokens/{read_only_id}"), Some(admin), None)?;
        ensure!(reply.status == 204, "revoke: {} {}", reply.status, reply.body);
        Ok(())
    })?;
    client.goto(&format!("{base}/ui/agents")).await?;
    ensure!(client.current_url().await?.path() == "/ui/sign-in", "a revoked token's session is over");
    Ok(())
}

#[test]
fn the_console_in_a_real_browser() -> anyhow::Result<()> {
    let api = api_configured(SharedCache::open(None, "", Default::default())?, &["alpha", "beta"], |_, _| Ok(()))?;
    let address = api.serve_on_loopback()?;
    let base = format!("http://{address}");
    let driver = start_driver()?;
    let _ = std::fs::remove_dir_all(artifacts());
    // The browser's futures run on a runtime of their own: the API calls
    // the test makes meanwhile block on the server's.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let outcome = runtime.block_on(async {
        let client = browser(&driver).await?;
        let walked = walk(&client, &api, &base).await;
        let closed = client.close().await;
        walked?;
        closed.map_err(anyhow::Error::from)
    });
    outcome?;
    validate_pages()?;
    Ok(())
}

/// The console's chart counts what the API's pages list, split by severity
/// or agent, within a range; and a count too broad for the work bound is
/// refused as a page would be.
#[test]
fn the_chart_counts_what_the_pages_list() -> anyhow::Result<()> {
    use mcp_storage::histogram::HistogramGroup;
    use mcp_storage::store::{AnomalyQuery, AnomalySort, AnomalyStore};

    let api = api_configured(SharedCache::open(None, "", Default::default())?, &["alpha", "beta"], |_, _| Ok(()))?;
    let mut store = AnomalyStore::open(&api.state.anomalies_db)?;
    let everything = AnomalyQuery {
        tenant: "alpha".into(),
        agent: None,
        log_type: None,
        label: None,
        severity: None,
        source: None,
        min_score: None,
        from_ms: None,
        to_ms: None,
        sort: AnomalySort::Time,
        after: None,
        limit: 1_000_000,
    };
    let listed = store.query(&everything)?;
    ensure!(!listed.is_empty(), "alpha has anomalies");
    let by_severity = store.histogram(&everything, HistogramGroup::Severity, 48)?;
    ensure!(by_severity.total() == listed.len() as u64, "{} counted, {} listed", by_severity.total(), listed.len());
    ensure!(by_severity.slots <= 48 && by_severity.slots > 0, "{} slots", by_severity.slots);
    for severity in ["info", "low", "medium", "high", "critical"] {
        let counted: u64 = by_severity.counts.iter().filter(|(_, s, _)| s == severity).map(|(_, _, n)| n).sum();
        let expected = listed.iter().filter(|a| a.severity == severity).count() as u64;
        ensure!(counted == expected, "{severity}: {counted} counted, {expected} listed");
    }
    // Each anomaly falls in the slot its time says.
    for anomaly in listed.iter().take(50) {
        let slot = usize::try_from((anomaly.log_ts_ms - by_severity.from_ms) / by_severity.slot_ms)?;
        ensure!(by_severity.counts.iter().any(|(s, sev, _)| *s == slot && *sev == anomaly.severity));
    }
    let by_agent = store.histogram(&everything, HistogramGroup::Agent, 10)?;
    ensure!(by_agent.total() == listed.len() as u64 && by_agent.counts.iter().all(|(_, agent, _)| agent == "firewall"));

    // A range: only what falls inside it, and nothing of another tenant.
    let middle = listed[listed.len() / 2].log_ts_ms;
    let ranged = AnomalyQuery { from_ms: Some(middle), to_ms: Some(middle + 60_000), ..everything.clone() };
    let expected = listed.iter().filter(|a| a.log_ts_ms >= middle && a.log_ts_ms < middle + 60_000).count() as u64;
    ensure!(store.histogram(&ranged, HistogramGroup::Severity, 48)?.total() == expected);
    let nobody = AnomalyQuery { tenant: "gamma".into(), ..everything.clone() };
    ensure!(store.histogram(&nobody, HistogramGroup::Severity, 48)?.total() == 0);

    store.set_page_query_steps(0);
    let refused = store.histogram(&everything, HistogramGroup::Severity, 48).err();
    ensure!(refused.is_some_and(|e| e.too_broad()), "a count past the work bound is refused as too broad");
    Ok(())
}
