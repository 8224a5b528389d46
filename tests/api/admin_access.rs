//! Who may change the workload: without a token or basic auth, `PUT
//! /admin/workload` is taken from loopback only. Tested from a non-loopback
//! address of a network namespace the test makes (needs root, as CI has).
use std::{net::SocketAddr, process::Command};

use crate::helpers::{binary, Binary, TokenFile};

/// A network namespace joined to this one by a veth pair: this side is
/// `10.N.M.1`, the namespace's `10.N.M.2`. Deleted (with the pair) when dropped.
struct Namespace {
    name: String,
    host: String,
    inside: String,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .unwrap_or_else(|err| panic!("ip {args:?}: {err}"));
    assert!(status.success(), "ip {args:?} failed");
}

impl Namespace {
    fn new() -> Self {
        let uid = Command::new("id").arg("-u").output().unwrap().stdout;
        assert_eq!(
            String::from_utf8_lossy(&uid).trim(),
            "0",
            "this test makes a network namespace (ip netns add), which needs root: run it as \
             root, as CI does"
        );
        let pid = std::process::id();
        let name = format!("myapp-admin-{pid}");
        let subnet = format!("10.{}.{}", 100 + pid % 100, (pid / 100) % 250);
        let namespace = Self {
            name: name.clone(),
            host: format!("{subnet}.1"),
            inside: format!("{subnet}.2"),
        };
        let (outer, inner) = (format!("mya{pid}o"), format!("mya{pid}i"));
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ]);
        ip(&["link", "set", &inner, "netns", &name]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", namespace.host),
            "dev",
            &outer,
        ]);
        ip(&["link", "set", &outer, "up"]);
        let in_ns = |args: &[&str]| ip(&[&["netns", "exec", &name, "ip"], args].concat());
        in_ns(&[
            "addr",
            "add",
            &format!("{}/24", namespace.inside),
            "dev",
            &inner,
        ]);
        in_ns(&["link", "set", &inner, "up"]);
        in_ns(&["link", "set", "lo", "up"]);
        namespace
    }

    /// Runs curl inside the namespace; returns the status and the body.
    fn curl(&self, args: &[&str]) -> (u16, String) {
        let output = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "curl",
                "-sS",
                "--max-time",
                "10",
            ])
            .args(["-w", "\n%{http_code}"])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8(output.stdout).unwrap();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.parse().unwrap(), body.to_string())
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair too.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

const CHANGE: &str = r#"{"error_rate":0.25}"#;

/// curl's arguments for a PUT of `CHANGE` to `url`.
fn put(url: &str) -> Vec<&str> {
    vec![
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/json",
        "-d",
        CHANGE,
        url,
    ]
}

/// The binary on every address (so the namespace reaches it), with `args`.
fn start_on_every_address(args: &[&str]) -> Binary {
    let mut command = binary();
    command.args(["--listen", "0.0.0.0:0"]).args(args);
    Binary::spawn(command)
}

#[test]
fn without_a_token_the_workload_changes_from_loopback_only_and_is_read_from_anywhere() {
    let namespace = Namespace::new();
    let open = start_on_every_address(&["--error-rate", "0.5"]);
    let url = |host: &str, path: &str| format!("http://{host}:{}{path}", open.address.port());
    let from_afar = url(&namespace.host, "/admin/workload");

    let (status, body) = namespace.curl(&put(&from_afar));
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body,
        "PUT /admin/workload is taken from loopback only while neither --metrics-token-file \
         nor basic_auth_users in --web-config-file is set: set one to change the workload from \
         other hosts\n"
    );
    // Reading stays open, and shows nothing changed.
    let (status, body) = namespace.curl(&[&from_afar]);
    assert_eq!(status, 200, "{body}");
    let settings: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(settings["error_rate"], 0.5);
    // /work too.
    let (status, _) = namespace.curl(&[&url(&namespace.host, "/work?delay_ms=0&fail=false")]);
    assert_eq!(status, 200);

    // The other side: from loopback, the change is taken.
    let loopback = SocketAddr::from(([127, 0, 0, 1], open.address.port()));
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(put(&format!("http://{loopback}/admin/workload")))
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    assert_eq!(status, "200", "{text}");
    let settings: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(settings["error_rate"], 0.25);
    // Taken: read back from the other host, the change is in force.
    let (status, body) = namespace.curl(&[&from_afar]);
    assert_eq!(status, 200, "{body}");
    let settings: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(settings["error_rate"], 0.25);

    let (status, logs) = {
        open.signal("TERM");
        open.wait()
    };
    assert!(status.success(), "{logs}");
    let listening = logs.lines().find(|l| l.contains(" listening ")).unwrap();
    assert!(
        listening.contains(r#"workload_changes="from loopback only""#),
        "{listening}"
    );

    // With a token, other hosts that carry it may change the workload.
    let token = TokenFile::new("admin-access", "n3tns-t0ken");
    let guarded = start_on_every_address(&["--metrics-token-file", token.path.to_str().unwrap()]);
    let from_afar = format!(
        "http://{}:{}/admin/workload",
        namespace.host,
        guarded.address.port()
    );
    let mut with_token = put(&from_afar);
    with_token.extend(["-H", "Authorization: Bearer n3tns-t0ken"]);
    let (status, body) = namespace.curl(&with_token);
    assert_eq!(status, 200, "{body}");
    let settings: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(settings["error_rate"], 0.25);
    let (status, _) = namespace.curl(&put(&from_afar));
    assert_eq!(status, 401, "without it: the token's answer");
    guarded.signal("TERM");
    let (_, logs) = guarded.wait();
    let listening = logs.lines().find(|l| l.contains(" listening ")).unwrap();
    assert!(
        listening.contains(r#"workload_changes="with the token""#),
        "{listening}"
    );

    // With basic auth, other hosts that log in may change the workload.
    // A bcrypt hash of "pw" made by Python's bcrypt.
    let web = crate::web_config::TextFile::new(
        "admin-access-users",
        "basic_auth_users: {prometheus: $2b$04$kPK.7DmElstOowpWSYgFkOKfgpLVjQ4p074QPUmzaXDIsmB535cZG}",
    );
    let users = start_on_every_address(&["--error-rate", "0.5", "--web-config-file", web.path()]);
    let from_afar = format!(
        "http://{}:{}/admin/workload",
        namespace.host,
        users.address.port()
    );
    for (credentials, expected) in [(None, 401), (Some("prometheus:wrong"), 401)] {
        let mut args = put(&from_afar);
        args.extend(credentials.map(|user| ["-u", user]).into_iter().flatten());
        let (status, body) = namespace.curl(&args);
        assert_eq!(status, expected, "{credentials:?}: {body}");
    }
    let read = |args: &[&str]| {
        let (status, body) = namespace.curl(args);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["error_rate"].clone()
    };
    assert_eq!(
        read(&["-u", "prometheus:pw", &from_afar]),
        0.5,
        "refused changes changed nothing"
    );
    let mut logged_in = put(&from_afar);
    logged_in.extend(["-u", "prometheus:pw"]);
    assert_eq!(read(&logged_in), 0.25, "the change's answer");
    assert_eq!(read(&["-u", "prometheus:pw", &from_afar]), 0.25, "in force");
    users.signal("TERM");
    let (_, logs) = users.wait();
    let listening = logs.lines().find(|l| l.contains(" listening ")).unwrap();
    assert!(
        listening.contains(r#"workload_changes="with basic auth""#),
        "{listening}"
    );
}
