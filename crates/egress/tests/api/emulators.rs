//! Cloud storage emulators the volume tests run against, started as child processes on a free
//! loopback port: gcp-storage-emulator (PyPI) and Azurite (npm), as `scripts/test` installs them
//! (`.venv/bin`, `.azurite/node_modules/.bin`) or from `PATH`. Without one, a test is skipped
//! with a loud line, except under `CI=true`, where a missing emulator fails it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Emulator {
    child: Child,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The emulator's program: where `scripts/test` installs it, else on `PATH`.
fn find(name: &str, installed: &[&str]) -> Option<PathBuf> {
    for place in installed {
        let path = workspace().join(place).join(name);
        if path.is_file() {
            return Some(path);
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// `None` (after a loud line) when the program is missing outside CI; a panic under CI=true.
fn missing(name: &str) -> Option<Emulator> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{name} is not installed, and CI=true: run scripts/test, which installs it");
    }
    eprintln!("SKIPPED: {name} is not installed (scripts/test installs it); the test did not run");
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(program: PathBuf, args: &[String], port: u16, dir: tempfile::TempDir) -> Emulator {
    let log = std::fs::File::create(dir.path().join("emulator.log")).unwrap();
    let child = Command::new(&program)
        .args(args)
        .current_dir(dir.path())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{} did not start",
            program.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Emulator {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// gcp-storage-emulator, in memory.
pub fn gcs() -> Option<Emulator> {
    let Some(program) = find("gcp-storage-emulator", &[".venv/bin"]) else {
        return missing("gcp-storage-emulator");
    };
    let port = free_port();
    let args = [
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--in-memory",
    ]
    .map(String::from);
    Some(start(program, &args, port, tempfile::tempdir().unwrap()))
}

/// A fresh RSA service-account key in PEM (PKCS #8).
pub fn service_account_key() -> String {
    use aws_lc_rs::encoding::AsDer;
    use base64::Engine;
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key).unwrap();
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// Azurite's blob service, in memory (it runs in a fresh folder for its debug files).
pub fn azurite() -> Option<Emulator> {
    let Some(program) = find("azurite-blob", &[".azurite/node_modules/.bin"]) else {
        return missing("azurite-blob");
    };
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        &port.to_string(),
        "--inMemoryPersistence",
        "--skipApiVersionCheck",
        "--silent",
    ]
    .map(String::from);
    Some(start(program, &args, port, dir))
}
