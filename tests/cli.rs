//! The `blindfold` client commands end to end: a real `blindfold serve` on a loopback port, driven
//! through the binary the way a person or a script would drive it.
//!
//! Ignored by default while the server side settles; run with
//! `cargo test -p blindfold --test cli -- --ignored`.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_blindfold");

/// A running server, stopped when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(root: &Path) -> Server {
    // A free port: bound, read, released. Another process could take it in between; on a test
    // machine that is rare enough.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let child = Command::new(BINARY)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--public-url",
            &url,
        ])
        .args(["--kdf-memory-kib", "8192", "--kdf-iterations", "1"])
        .arg("--data")
        .arg(root.join("data"))
        .arg("--keyring")
        .arg(root.join("blindfold.keyring"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, url };

    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the server did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// Runs one client command with the given environment and standard input.
fn client(
    server: &Server,
    config: &Path,
    env: &[(&str, &str)],
    stdin: &[u8],
    args: &[&str],
) -> Output {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env("BLINDFOLD_SERVER", &server.url)
        .env("BLINDFOLD_CONFIG_DIR", config)
        .env_remove("BLINDFOLD_PASSWORD")
        .env_remove("BLINDFOLD_NEW_PASSWORD")
        .env_remove("BLINDFOLD_RECOVERY_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn succeeded(output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "command failed: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

fn recovery_key(printed: &str) -> String {
    let mut lines = printed
        .lines()
        .skip_while(|l| !l.starts_with("Recovery key:"))
        .skip(1);
    lines
        .find(|l| !l.trim().is_empty())
        .unwrap()
        .trim()
        .to_string()
}

#[test]

fn a_user_signs_up_keeps_items_changes_password_recovers_and_logs_out() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("client");
    let server = start_server(root.path());
    let first = [("BLINDFOLD_PASSWORD", "correct horse battery staple")];

    // Sign up: the recovery key is printed once, the password never.
    let args = ["signup", "alice", "--email", "alice@example.org"];
    let printed = succeeded(client(&server, &config, &first, b"", &args));
    let first_recovery_key = recovery_key(&printed);
    assert!(!printed.contains("correct horse"));
    let mode = |name: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(config.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!((mode("device.key"), mode("session.json")), (0o600, 0o600));

    let me = succeeded(client(&server, &config, &[], b"", &["whoami"]));
    assert!(me.contains("username: alice") && me.contains("alice@example.org"));

    // Items: raw bytes in, the same bytes out.
    let value = b"line one\n\x00\xffbinary";
    succeeded(client(
        &server,
        &config,
        &[],
        value,
        &["items", "put", "notes/1", "-"],
    ));
    let read = client(&server, &config, &[], b"", &["items", "get", "notes/1"]);
    assert!(read.status.success());
    assert_eq!(read.stdout, value);
    let listed = succeeded(client(&server, &config, &[], b"", &["items", "ls"]));
    assert!(listed.contains("notes/1"));
    succeeded(client(
        &server,
        &config,
        &[],
        b"",
        &["items", "rm", "notes/1"],
    ));
    let gone = client(&server, &config, &[], b"", &["items", "get", "notes/1"]);
    assert!(!gone.status.success());

    // Password change through --password-stdin: the old password stops working.
    let lines = b"correct horse battery staple\nsecond password, longer\n";
    succeeded(client(
        &server,
        &config,
        &[],
        lines,
        &["--password-stdin", "password"],
    ));
    let old = client(&server, &config, &first, b"", &["login", "alice"]);
    assert!(!old.status.success());
    let second = [("BLINDFOLD_PASSWORD", "second password, longer")];
    succeeded(client(&server, &config, &second, b"", &["login", "alice"]));

    // Recovery: a new recovery key replaces the old one.
    let recover = [
        ("BLINDFOLD_RECOVERY_KEY", first_recovery_key.as_str()),
        ("BLINDFOLD_NEW_PASSWORD", "third password after recovery"),
    ];
    let printed = succeeded(client(
        &server,
        &config,
        &recover,
        b"",
        &["recover", "alice"],
    ));
    assert_ne!(recovery_key(&printed), first_recovery_key);

    // Log out everywhere: the session is gone here too.
    succeeded(client(&server, &config, &[], b"", &["logout-all"]));
    let after = client(&server, &config, &[], b"", &["whoami"]);
    assert!(!after.status.success());
    assert!(String::from_utf8_lossy(&after.stderr).contains("log"));
}
