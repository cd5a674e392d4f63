//! The web console in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! driven over WebDriver with fantoccini) against `pyapp-install serve` under a real
//! systemd: log in, see hello running, change its greeting (a bad value shows its error
//! and is not saved; a good one restarts the service, which then greets with it), upload
//! 1.1.0 and watch it switch, roll back, find a log line by searching, see a refused
//! upgrade among the notifications, and the app page at phone width. A screenshot of each step is kept in target/console-screenshots/.
//!
//! The sandbox has a network of its own: its console and hello's port are reached through
//! unix sockets in the shared work directory (a small forwarder inside, one in this test
//! outside), so the browser talks to `http://127.0.0.1:PORT` as a user's SSH tunnel would.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::harness::{self, fact};
use crate::lifecycle::{bundle, Flaw};

/// Runs in the sandbox until the test writes WORK/done (ten minutes at most).
const SCRIPT: &str = r#"set -u
OUT=$1; INSTALL=$2; V1=$3; WORK=$4
groupadd --system pyapp-admin
"$INSTALL" --python /usr/bin/python3 "$V1" > $OUT/install.out 2>&1
"$INSTALL" serve --python /usr/bin/python3 --http 8470 > $OUT/serve.out 2> $OUT/serve.err &
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8470/login && break; sleep 0.1; done
cp /var/lib/pyapp/console/token $OUT/token
PORT=$("$INSTALL" --json status hello | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["services"][0]["port"])')
/usr/bin/python3 $WORK/forward.py $WORK/console.sock 8470 $WORK/hello.sock $PORT 2> $OUT/forward.err &
for _ in $(seq 100); do [ -S $WORK/hello.sock ] && break; sleep 0.1; done
touch $OUT/ready
for _ in $(seq 3000); do [ -e $WORK/done ] && break; sleep 0.2; done
cp /applications/hello/config/config.yaml $OUT/config.yaml
exit 0
"#;

/// Inside the sandbox: each unix socket given is forwarded to a port of its loopback.
const FORWARD: &str = r#"import os, socket, sys, threading
def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
def serve(path, port):
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(64)
    while True:
        client, _ = listener.accept()
        try:
            server = socket.create_connection(("127.0.0.1", port))
        except OSError:
            client.close()
            continue
        threading.Thread(target=pipe, args=(client, server), daemon=True).start()
        threading.Thread(target=pipe, args=(server, client), daemon=True).start()
pairs = sys.argv[1:]
for at in range(0, len(pairs), 2):
    threading.Thread(target=serve, args=(pairs[at], int(pairs[at + 1])), daemon=True).start()
threading.Event().wait()
"#;

/// A port of this machine's loopback forwarded to the unix socket `path`; returns the port.
fn forward_to(path: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = UnixStream::connect(&path) else {
                continue;
            };
            let (mut client_in, mut server_in) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut client_out, mut server_out) = (client, server);
            std::thread::spawn(move || {
                let _ = io::copy(&mut client_in, &mut server_out);
                let _ = server_out.shutdown(std::net::Shutdown::Both);
            });
            std::thread::spawn(move || {
                let _ = io::copy(&mut server_in, &mut client_out);
                let _ = client_out.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

/// Ends the sandbox (through WORK/done) and chromedriver, however the test ends.
struct Running {
    sandbox: Child,
    driver: Child,
    done: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.done, "");
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = self.sandbox.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (up to `seconds`) until `path` exists; panics if `child` ended first.
fn await_file(path: &Path, child: &mut Child, seconds: u64) {
    let start = Instant::now();
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the sandbox ended ({status}) before {}", path.display());
        }
        assert!(
            start.elapsed() < Duration::from_secs(seconds),
            "no {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The screenshots of one run.
struct Shots {
    dir: PathBuf,
}

impl Shots {
    async fn take(&self, client: &Client, name: &str) {
        let png = client.screenshot().await.unwrap();
        std::fs::write(self.dir.join(format!("{name}.png")), png).unwrap();
    }
}

/// Clicks the element `css`.
async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Types `text` into the element `css`.
async fn type_into(client: &Client, css: &str, text: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

/// Waits (up to 60 s) until the page's URL has a query containing `wanted`: the page a
/// form's GET led to, not the one it was sent from.
async fn await_query(client: &Client, wanted: &str) {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(url) = client.current_url().await {
            if url.query().is_some_and(|query| query.contains(wanted)) {
                return;
            }
            last = Some(url);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the URL never had {wanted:?} in its query; last: {last:?}");
}

/// Waits (up to 60 s) until the element `css` has text containing `wanted`; its text.
async fn await_text(client: &Client, css: &str, wanted: &str) -> String {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            last = element.text().await.unwrap_or_default();
            if last.contains(wanted) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{css} never said {wanted:?}; last: {last:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_user_does_every_step_in_the_console_with_chromium() {
    let sandbox = harness::sandbox();
    let work = tempfile::tempdir_in(harness::workspace().join("target")).unwrap();
    let v1 = bundle(work.path(), "1.0.0", Flaw::None);
    let v2 = bundle(work.path(), "1.1.0", Flaw::None);
    let bad_hook = bundle(work.path(), "1.2.0", Flaw::PostUpdate);
    std::fs::write(work.path().join("forward.py"), FORWARD).unwrap();
    std::fs::write(work.path().join("script.sh"), SCRIPT).unwrap();
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let shots = Shots {
        dir: harness::workspace().join("target/console-screenshots"),
    };
    let _ = std::fs::remove_dir_all(&shots.dir);
    std::fs::create_dir_all(&shots.dir).unwrap();

    let mut child = Command::new(&sandbox)
        .arg("--")
        .arg("bash")
        .arg(work.path().join("script.sh"))
        .arg(&out)
        .arg(harness::bin("pyapp-install"))
        .arg(&v1)
        .arg(work.path())
        .env("SANDBOX_BIND", work.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    await_file(&out.join("ready"), &mut child, 300);
    let driver_port = free_port();
    let profile = tempfile::tempdir().unwrap();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={driver_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian's chromium-driver) is needed");
    let _running = Running {
        sandbox: child,
        driver,
        done: work.path().join("done"),
    };
    let console = forward_to(work.path().join("console.sock"));
    let hello = forward_to(work.path().join("hello.sock"));
    let token = fact(&out, "token");
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", driver_port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1100,900",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a WebDriver session with headless Chromium");
    let base = format!("http://127.0.0.1:{console}");

    // Log in: the console sends a new visitor to the form.
    client.goto(&base).await.unwrap();
    assert!(client.current_url().await.unwrap().path() == "/login");
    type_into(&client, "#token", "not the token").await;
    click(&client, "form button").await;
    await_text(&client, "form .error", "wrong token").await;
    shots.take(&client, "01-login-refused").await;
    type_into(&client, "#token", &token).await;
    click(&client, "form button").await;
    let row = await_text(&client, "ul.apps", "hello").await;
    assert!(row.contains("1.0.0") && row.contains("running"), "{row}");
    shots.take(&client, "02-apps").await;

    // The app page: running, its units, its release.
    client.goto(&format!("{base}/apps/hello")).await.unwrap();
    await_text(&client, "#health", "running").await;
    await_text(&client, "main", "hello-web.service").await;
    shots.take(&client, "03-app").await;

    // A bad greeting: its error next to the field, nothing saved, also when the browser's
    // check is bypassed and the server checks it.
    client
        .goto(&format!("{base}/apps/hello/config"))
        .await
        .unwrap();
    let greeting = client.find(Locator::Css("#greeting")).await.unwrap();
    greeting.clear().await.unwrap();
    greeting.send_keys("Hi 123").await.unwrap();
    click(&client, "#save").await;
    let start = Instant::now();
    loop {
        let error = client.find(Locator::Css("#error-greeting")).await.unwrap();
        if !error.text().await.unwrap().is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no error next to greeting"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(client
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/config"));
    shots.take(&client, "04-config-refused-in-browser").await;
    client
        .execute(
            "document.getElementById('config').removeAttribute('data-validate'); \
             document.getElementById('config').submit();",
            vec![],
        )
        .await
        .unwrap();
    let error = await_text(&client, "#error-greeting", "does not match regex").await;
    assert!(error.contains("Hi 123"), "{error}");
    shots.take(&client, "05-config-refused-by-server").await;

    // A good one: saved, the service restarted, and hello greets with it.
    let greeting = client.find(Locator::Css("#greeting")).await.unwrap();
    greeting.clear().await.unwrap();
    greeting.send_keys("Howdy").await.unwrap();
    click(&client, "#save").await;
    let flash = await_text(&client, "#flash", "saved greeting").await;
    assert!(flash.contains("restarted hello-web.service"), "{flash}");
    shots.take(&client, "06-config-saved").await;
    // The service may still be starting: the page is asked for again until it answers.
    let start = Instant::now();
    loop {
        client
            .goto(&format!("http://127.0.0.1:{hello}/"))
            .await
            .unwrap();
        let heading = match client.find(Locator::Css("h1")).await {
            Ok(heading) => heading.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if heading.contains("Howdy, world!") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "hello says {heading:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    shots.take(&client, "07-hello-greets").await;

    // Upload 1.1.0 and watch it switch.
    client.goto(&format!("{base}/upload")).await.unwrap();
    type_into(&client, "#bundle", v2.to_str().unwrap()).await;
    click(&client, "#send").await;
    await_text(&client, "#phase", "upgraded hello 1.1.0").await;
    let events = client
        .find(Locator::Css("#events"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!events.is_empty(), "the install said nothing while it ran");
    shots.take(&client, "08-upload-upgraded").await;
    click(&client, "#open-app").await;
    await_text(&client, "h1", "1.1.0").await;
    await_text(&client, "#health", "running").await;
    shots.take(&client, "09-app-upgraded").await;

    // Roll back.
    click(&client, "#rollback").await;
    await_text(&client, "#flash", "rolled back to 1.0.0").await;
    await_text(&client, "h1", "1.0.0").await;
    shots.take(&client, "10-rolled-back").await;

    // Find a log line by searching.
    client
        .goto(&format!("{base}/apps/hello/logs"))
        .await
        .unwrap();
    type_into(&client, "#search", "Listening at").await;
    click(&client, "#search-button").await;
    // The unfiltered page has the line too: read the one the search led to.
    await_query(&client, "text=Listening").await;
    let log = await_text(&client, "#log", "Listening at").await;
    assert!(
        log.lines()
            .all(|line| line.to_lowercase().contains("listening at")),
        "{log}"
    );
    shots.take(&client, "11-log-search").await;

    // Be told when something fails: an upgrade whose post-update hook fails is refused,
    // and the Notifications page (and the app's) says so.
    client.goto(&format!("{base}/upload")).await.unwrap();
    type_into(&client, "#bundle", bad_hook.to_str().unwrap()).await;
    click(&client, "#send").await;
    await_text(&client, "#phase", "hook post-update failed").await;
    click(&client, "a[href=\"/notifications\"]").await;
    let row = await_text(&client, "tr.notification", "hook-failed").await;
    // Pending: pyapp-notify.path, which would deliver it, is not enabled here.
    assert!(
        row.contains("hello") && row.contains("post-update") && row.contains("pending"),
        "{row}"
    );
    shots.take(&client, "12-notifications").await;
    client.goto(&format!("{base}/apps/hello")).await.unwrap();
    await_text(&client, "#notifications", "hook-failed").await;

    // Phone width.
    client.set_window_size(390, 844).await.unwrap();
    client.goto(&format!("{base}/apps/hello")).await.unwrap();
    await_text(&client, "#health", "running").await;
    let overflow = client
        .execute(
            "return document.documentElement.scrollWidth > window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(overflow, json!(false), "the page is wider than a phone");
    shots.take(&client, "13-phone").await;
    client.close().await.unwrap();
}
