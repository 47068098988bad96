//! The `blindfold` client commands end to end: a real `blindfold serve` on a loopback port, driven
//! through the binary the way a person or a script would drive it.
//!
//! TOTP codes are computed here from the secret the client prints, with an RFC 6238
//! implementation independent of the server's.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "shared/rfc6238.rs"]
mod rfc6238;

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
        .env_remove("BLINDFOLD_TOTP")
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

/// The indented lines after "Backup codes": the codes, in order.
fn backup_codes(printed: &str) -> Vec<String> {
    printed
        .lines()
        .skip_while(|l| !l.starts_with("Backup codes"))
        .skip(1)
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with("    "))
        .map(|l| l.trim().to_string())
        .collect()
}

/// Runs `totp enable` the way a person does: reads the secret it prints, works out the current
/// code from it and types that in (on standard input). Returns the secret and all it printed.
fn enable_totp(server: &Server, config: &Path) -> (Vec<u8>, String) {
    let mut child = Command::new(BINARY)
        .args(["--password-stdin", "totp", "enable"])
        .env("BLINDFOLD_SERVER", &server.url)
        .env("BLINDFOLD_CONFIG_DIR", config)
        .env_remove("BLINDFOLD_TOTP")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let secret = loop {
        let mut line = String::new();
        assert_ne!(
            stdout.read_line(&mut line).unwrap(),
            0,
            "no secret: {printed}"
        );
        printed.push_str(&line);
        if let Some(secret) = line.strip_prefix("TOTP secret: ") {
            break rfc6238::base32_decode(secret.trim());
        }
    };

    let code = rfc6238::code(&secret, rfc6238::unix_now());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{code}\n").as_bytes()).unwrap();
    drop(stdin);
    std::io::Read::read_to_string(&mut stdout, &mut printed).unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "totp enable failed: {stderr}");
    (secret, printed)
}

#[test]
fn a_user_turns_on_totp_logs_in_with_a_code_reads_the_security_log_and_deletes_the_account() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("client");
    let server = start_server(root.path());
    let password = [("BLINDFOLD_PASSWORD", "a password for bob's account")];
    succeeded(client(&server, &config, &password, b"", &["signup", "bob"]));

    // TOTP on: the secret and its URI are shown, then ten backup codes, once each.
    let (secret, printed) = enable_totp(&server, &config);
    assert!(printed.contains("otpauth URI: otpauth://totp/"));
    let codes = backup_codes(&printed);
    assert_eq!(codes.len(), 10, "{printed}");
    assert!(
        codes
            .iter()
            .all(|c| printed.matches(c.as_str()).count() == 1)
    );
    let again = client(&server, &config, &[], b"", &["totp", "enable"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already on"));

    // A login now needs a code: without one it fails and says where a code may come from.
    let no_code = client(&server, &config, &password, b"", &["login", "bob"]);
    assert!(!no_code.status.success());
    assert!(String::from_utf8_lossy(&no_code.stderr).contains("BLINDFOLD_TOTP"));

    // The code of the next step: the one just spent at set-up cannot be used again.
    let next = rfc6238::code(&secret, rfc6238::unix_now() + 30);
    let lines = format!("a password for bob's account\n{next}\n");
    let args = ["--password-stdin", "login", "bob"];
    let printed = succeeded(client(&server, &config, &[], lines.as_bytes(), &args));
    assert_eq!(printed, "logged in as bob\n");

    // The security log: newest first, readable times.
    let log = succeeded(client(&server, &config, &[], b"", &["security-log"]));
    let events: Vec<&str> = log
        .lines()
        .skip(1)
        .map(|l| l.split("  ").filter(|f| !f.is_empty()).nth(1).unwrap())
        .collect();
    assert!(log.starts_with("TIME"), "{log}");
    assert_eq!(&events[..2], ["login", "totp_enabled"], "{log}");
    assert!(log.lines().nth(1).unwrap().contains(" UTC  "));

    // A new set of backup codes, asked with one of the old ones; the old set stops working.
    let old = [("BLINDFOLD_TOTP", codes[0].as_str())];
    let printed = succeeded(client(&server, &config, &old, b"", &["backup-codes"]));
    let fresh = backup_codes(&printed);
    assert_eq!(fresh.len(), 10);

    // Deletion: refused without --yes, then done with the password and a backup code.
    let unconfirmed = client(&server, &config, &password, b"", &["delete-account"]);
    assert!(!unconfirmed.status.success());
    let explained = String::from_utf8_lossy(&unconfirmed.stderr);
    assert!(explained.contains("cannot be undone") && explained.contains("--yes"));
    let stale = [
        ("BLINDFOLD_PASSWORD", "a password for bob's account"),
        ("BLINDFOLD_TOTP", codes[1].as_str()),
    ];
    let refused = client(&server, &config, &stale, b"", &["delete-account", "--yes"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("invalid_second_factor"));
    let confirmed = [
        ("BLINDFOLD_PASSWORD", "a password for bob's account"),
        ("BLINDFOLD_TOTP", fresh[0].as_str()),
    ];
    let args = ["delete-account", "--yes"];
    let printed = succeeded(client(&server, &config, &confirmed, b"", &args));
    assert!(printed.starts_with("account deleted"));
    assert!(!config.join("session.json").exists());
    assert!(config.join("device.key").exists());

    // The account is gone: logging in fails, with any code.
    let after = [
        ("BLINDFOLD_PASSWORD", "a password for bob's account"),
        ("BLINDFOLD_TOTP", fresh[1].as_str()),
    ];
    let gone = client(&server, &config, &after, b"", &["login", "bob"]);
    assert!(!gone.status.success());
    let whoami = client(&server, &config, &[], b"", &["whoami"]);
    assert!(!whoami.status.success());
}
