//! `ordo up` as a newcomer uses it: start it, run the printed command, see the order finish,
//! stop it with Ctrl-C, start it again and find the same state.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `ordo up` and returns it with the lines it printed up to "Ctrl-C".
fn up(dir: &std::path::Path, port: u16) -> (Child, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(["up", "--dir"])
        .arg(dir.join("data"))
        .args(["--port", &port.to_string()])
        .env("ORDO_CONFIG", dir.join("profile.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ordo up starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let done = line.contains("Ctrl-C");
                lines.push(line);
                if done {
                    return (child, lines);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("ordo up exited with {status}: {lines:?}");
                }
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("ordo up did not come up within 60 s: {lines:?}");
}

fn interrupt_and_wait(mut child: Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "ordo up ended with {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("ordo up did not stop within 20 s of Ctrl-C");
}

fn ordo(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(args)
        .env("ORDO_CONFIG", dir.join("profile.toml"))
        .env_remove("ORDO_API")
        .env_remove("ORDO_TOKEN")
        .env_remove("ORDO_CA")
        .output()
        .unwrap()
}

#[test]
fn process_up_runs_the_printed_command_to_the_end_and_resumes_after_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (child, lines) = up(dir.path(), port);
    // The banner names the URL, the admin token and a command to add an order.
    let text = lines.join("\n");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("admin token:"), "{text}");
    let command = lines
        .iter()
        .map(|l| l.trim())
        .find(|l| l.starts_with("ordo order add"))
        .expect("a command to add an order is printed")
        .to_owned();
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let out = ordo(dir.path(), &args);
    assert!(
        out.status.success(),
        "{command}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ordo(dir.path(), &["orders", "--json"]);
    let before = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(before.contains("\"finished\""), "{before}");
    interrupt_and_wait(child);

    let (child, _) = up(dir.path(), port);
    let out = ordo(dir.path(), &["orders", "--json"]);
    let after = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        after.contains("\"finished\""),
        "the state came back: {after}"
    );
    interrupt_and_wait(child);
}
