//! The test-support module's own tests: real `redis-server` processes and a real cluster.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{RedisCluster, RedisServer};

/// Sends `PING` over a fresh connection; `Ok(true)` on `+PONG`, `Ok(false)` on any other
/// reply, `Err` when connecting, writing or reading (within `timeout`) fails.
fn tcp_ping(port: u16, timeout: Duration) -> std::io::Result<bool> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"PING\r\n")?;
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply)?;
    Ok(&reply == b"+PONG\r\n")
}

#[test]
fn server_set_get_and_url() {
    let server = RedisServer::start();
    assert_ne!(server.port(), 6379);
    assert!(server.url().contains(&server.port().to_string()));
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    assert_eq!(server.cli(&["SET", "k", "v"]), "OK");
    assert_eq!(server.cli(&["GET", "k"]), "v");
    // Persistence is off, as configured.
    assert_eq!(server.cli(&["CONFIG", "GET", "save"]), "save");
    assert_eq!(
        server.cli(&["CONFIG", "GET", "appendonly"]),
        "appendonly\nno"
    );
}

#[test]
fn kill_closes_the_port_and_restart_comes_back_empty() {
    let mut server = RedisServer::start();
    let port = server.port();
    assert_eq!(server.cli(&["SET", "k", "v"]), "OK");

    server.kill();
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
        "port {port} still accepts connections after kill()"
    );

    server.restart();
    assert_eq!(server.port(), port);
    assert!(tcp_ping(port, Duration::from_secs(2)).expect("PING after restart"));
    assert_eq!(server.cli(&["GET", "k"]), "", "data survived a restart");
    assert_eq!(server.cli(&["DBSIZE"]), "0");
}

#[test]
fn frozen_server_does_not_answer_until_thawed() {
    let server = RedisServer::start();
    assert!(tcp_ping(server.port(), Duration::from_secs(2)).expect("PING before freeze"));

    server.freeze();
    let started = Instant::now();
    let frozen = tcp_ping(server.port(), Duration::from_millis(300));
    assert!(frozen.is_err(), "a frozen server answered PING: {frozen:?}");
    assert!(started.elapsed() >= Duration::from_millis(250));

    server.thaw();
    assert!(tcp_ping(server.port(), Duration::from_secs(2)).expect("PING after thaw"));
}

#[test]
fn drop_kills_the_server_and_removes_its_dir() {
    let server = RedisServer::start();
    let port = server.port();
    let dir = server.dir().to_path_buf();
    let pid = server.pid().expect("a started server has a pid");
    assert!(dir.join("redis.log").exists());
    drop(server);
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
    assert!(!dir.exists(), "{} survived drop", dir.display());
    let alive = Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .expect("run kill -0")
        .success();
    assert!(!alive, "redis-server {pid} survived drop");
}

#[test]
fn two_servers_get_different_ports() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(RedisServer::start);
        let b = s.spawn(RedisServer::start);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_ne!(a.port(), b.port());
    assert_eq!(a.cli(&["SET", "who", "a"]), "OK");
    assert_eq!(b.cli(&["GET", "who"]), "");
}

#[test]
fn cluster_of_three_masters_spreads_keys() {
    let started = Instant::now();
    let cluster = RedisCluster::start();
    eprintln!("cluster ready in {:?}", started.elapsed());

    assert_eq!(cluster.nodes().len(), 3);
    let urls = cluster.urls();
    assert_eq!(urls.len(), 3);
    for (node, url) in cluster.nodes().iter().zip(&urls) {
        assert_eq!(*url, node.url());
        assert!(node.port() < 55_535);
        let info = node.cli(&["CLUSTER", "INFO"]);
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert!(info.contains("cluster_size:3"), "{info}");
        assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
    }
    // Slots were assigned in node order: node 0 owns slot 0, node 2 slot 16383.
    for (i, first_slot) in [(0, "0-"), (2, "-16383")] {
        let nodes = cluster.nodes()[i].cli(&["CLUSTER", "NODES"]);
        let myself = nodes
            .lines()
            .find(|line| line.contains("myself"))
            .expect("CLUSTER NODES has a myself line");
        assert!(myself.contains(first_slot), "node {i}: {myself}");
    }

    // 300 SETs through one `redis-cli -c` that follows MOVED redirects.
    let commands: String = (0..300).map(|i| format!("SET key:{i} {i}\n")).collect();
    let mut child = Command::new("redis-cli")
        .args(["-c", "-h", "127.0.0.1", "-p"])
        .arg(cluster.nodes()[0].port().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run redis-cli -c");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(commands.as_bytes())
        .expect("write commands");
    let output = child.wait_with_output().expect("redis-cli -c");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.lines().filter(|line| *line == "OK").count(),
        300,
        "{stdout}"
    );

    let counts = cluster.keys_per_node();
    assert_eq!(counts.len(), 3);
    assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
    assert_eq!(counts.iter().sum::<usize>(), 300, "{counts:?}");
    // A key is readable from the node that owns its slot.
    let slot = cluster.nodes()[0].cli(&["CLUSTER", "KEYSLOT", "key:7"]);
    let owner = match slot.parse::<u16>().expect("a slot number") {
        0..=5460 => 0,
        5461..=10922 => 1,
        _ => 2,
    };
    assert_eq!(cluster.nodes()[owner].cli(&["GET", "key:7"]), "7");
    eprintln!("keys per node: {counts:?}; total {:?}", started.elapsed());
}

/// Set in the environment of the child test process that
/// `watchdog_kills_servers_of_a_finished_test_process` runs.
const LEAK_CHILD_ENV: &str = "CACHETTE_SUPPORT_LEAK_CHILD";

/// Run only as a child of `watchdog_kills_servers_of_a_finished_test_process`: keeps a
/// server in a `static` (never dropped) and lets the test process exit.
#[test]
#[ignore = "run by watchdog_kills_servers_of_a_finished_test_process"]
fn leak_server_in_static() {
    static LEAKED: std::sync::OnceLock<RedisServer> = std::sync::OnceLock::new();
    assert_eq!(std::env::var(LEAK_CHILD_ENV).as_deref(), Ok("1"));
    let server = LEAKED.get_or_init(RedisServer::start);
    assert_eq!(server.cli(&["PING"]), "PONG");
    println!(
        "LEAKED pid={} port={}",
        server.pid().expect("running"),
        server.port()
    );
    println!("LEAKED_DIR {}", server.dir().display());
}

#[test]
fn watchdog_kills_servers_of_a_finished_test_process() {
    let output = Command::new(std::env::current_exe().expect("path of this test binary"))
        .args([
            "--exact",
            "leak_server_in_static",
            "--ignored",
            "--nocapture",
        ])
        .env(LEAK_CHILD_ENV, "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the child test process");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child failed: {output:?}");
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("LEAKED "))
        .unwrap_or_else(|| panic!("no LEAKED line in {stdout}"));
    let field = |name: &str| -> u32 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    let (pid, port) = (field("pid="), field("port="));
    let dir = stdout
        .lines()
        .find_map(|line| line.strip_prefix("LEAKED_DIR "))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("no LEAKED_DIR line in {stdout}"));
    let port = u16::try_from(port).expect("a port");

    // The child process has exited; its watchdog polls every 0.5 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "redis-server {pid} on port {port} outlived its test process"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Gone, or a zombie waiting for whoever adopted it to reap it: either way not running.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = state.rsplit_once(") ").map_or("", |(_, rest)| &rest[..1]);
    assert!(
        state.is_empty() || state == "Z" || state == "X",
        "redis-server {pid} still exists in state {state}"
    );
    // The watchdog removes the directory right after the kill.
    while dir.exists() {
        assert!(Instant::now() < deadline, "{} survived", dir.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}
